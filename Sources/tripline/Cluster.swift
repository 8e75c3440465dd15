import ArgumentParser
import Foundation
import TriplineCluster
import TriplineCore
import TriplineNATS

/// `tripline cluster …` and `tripline worker`: the cluster mode on NATS JetStream.
struct ClusterCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster",
        abstract: "Create a cluster on NATS JetStream, publish events to it, read its alerts.",
        subcommands: [Create.self, Publish.self, Alerts.self, Status.self, Up.self]
    )

    static func connect(_ urls: String, name: String) throws -> NATSConnection {
        let servers = urls.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !servers.isEmpty else { throw ValidationError("--cluster: give one or more nats:// URLs, comma-separated") }
        for s in servers where !s.hasPrefix("nats://") { throw ValidationError("--cluster: '\(s)' is not a nats:// URL") }
        return try NATSConnection(servers: servers, name: name)
    }

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "create",
            abstract: "Create the cluster's streams and record its partitions, time settings and catalog.")
        @Option(help: "NATS servers, comma-separated (nats://127.0.0.1:4222,...).") var cluster: String
        @Option(help: "Partitions P (fixed for the cluster's life): an entity's events go to hash(entity) mod P.") var partitions = 24
        @Option(help: "Stream replicas: 3 on a three-server JetStream cluster, 1 on a single server.") var replicas = 1
        @Option(name: .customLong("allowed-lateness"), help: "Apply events up to this much out of order (e.g. 5s).") var allowedLateness = "0s"
        @Option(name: .customLong("dedup-window"), help: "Remember an accepted event id until the watermark passes its time plus this.") var dedupWindow = "24h"
        @Option(help: "Zones (GeoJSON FeatureCollection).") var zones: String?
        @Option(help: "Entities (NDJSON).") var entities: String?
        @Option(help: "Rules (YAML or JSON).") var rules: String?

        func run() throws {
            guard partitions >= 1 && partitions <= 4096 else { throw ValidationError("--partitions must be 1 to 4096") }
            func read(_ p: String?) throws -> [UInt8] {
                guard let p else { return [] }
                guard let d = FileManager.default.contents(atPath: p) else { throw ValidationError("cannot read \(p)") }
                return [UInt8](d)
            }
            let config = ClusterConfig(partitions: partitions, allowedLateness: try CLI.parseDuration(allowedLateness, option: "--allowed-lateness"),
                                       dedupWindow: try CLI.parseDuration(dedupWindow, option: "--dedup-window"))
            let catalog = ClusterCatalog(zones: try read(zones), entities: try read(entities), rules: try read(rules))
            let c = try ClusterCommand.connect(cluster, name: "tripline cluster create")
            try ClusterSetup.create(c, config: config, catalog: catalog, replicas: replicas)
            print("cluster created: \(partitions) partitions, \(replicas) replica(s); start workers with 'tripline worker --cluster \(cluster)'")
        }
    }

    struct Publish: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "publish",
            abstract: "Act as the gateway for an NDJSON events file: offer it in arrival order, publish each batch's records and wait for JetStream's acknowledgement.")
        @Option(help: "NATS servers, comma-separated.") var cluster: String
        @Option(help: "Events per batch (one message per partition per batch).") var batch = 1000
        @Option(help: "After the file: advance event time to this (RFC 3339 or epoch ms), as replay --until does; default: the largest event time.") var until: String?
        @Option(name: .customLong("flush-bytes"), help: "Publish (one message per partition) and wait for acknowledgements once this many bytes of records wait.") var flushBytes = 512 << 10
        @Argument(help: "The events file (NDJSON).") var events: String

        func run() throws {
            let c = try ClusterCommand.connect(cluster, name: "tripline gateway")
            let loaded = try ClusterSetup.loadVersioned(c)
            let (_, entities, _) = try loaded.catalog.decode()
            // The one gateway: refused while an API node (or another publish) holds the lease;
            // carries on from what the stream holds.
            let lease = try GatewayLease(connection: c, holder: "tripline cluster publish, PID \(getpid()) on \(ProcessInfo.processInfo.hostName)")
            guard try lease.tryAcquire() else {
                CLI.printErr("tripline: another gateway holds the cluster's gateway lease (\(lease.currentHolder() ?? "an API node")): post the events to it")
                throw ExitCode(1)
            }
            lease.keepRenewing(lost: { other in
                CLI.printErr("tripline: lost the cluster's gateway lease to \(other); stopping")
                Foundation.exit(1)
            })
            defer { lease.release() }
            let (gw, _, _) = try ClusterGatewayPublisher.rebuilt(connection: c, config: loaded.config, entities: entities, catalogVersion: loaded.version)
            guard let data = FileManager.default.contents(atPath: events) else { throw ValidationError("cannot read \(events)") }
            let bytes = [UInt8](data)
            var lines: [[UInt8]] = [], numbers: [Int] = []
            var late = 0, dups = 0, received = 0
            var lineNo = 0
            let began = ContinuousClock.now
            var acks: [Double] = []
            func timedFlush() throws {
                let t0 = ContinuousClock.now
                try gw.flush()
                let d = (ContinuousClock.now - t0).components
                acks.append(Double(d.seconds) * 1000 + Double(d.attoseconds) / 1e15)
            }
            func send() throws {
                guard !lines.isEmpty else { return }
                let texts = EventTexts(lines: lines, numbers: numbers, unit: "line", file: events)
                switch try gw.offer(texts, publish: false) {
                case .success(let r):
                    late += r.late.count
                    dups += r.duplicates
                    received += r.received
                case .failure(let invalid):
                    invalid.errors.forEach { CLI.printErr($0.description) }
                    throw ExitCode(2)
                }
                lines.removeAll(keepingCapacity: true)
                numbers.removeAll(keepingCapacity: true)
                // Publish once about --flush-bytes of records are waiting (a message per
                // partition), and wait for their acknowledgements.
                if gw.unpublishedBytes >= flushBytes { try timedFlush() }
            }
            var start = 0
            var reported = 0
            for i in 0...bytes.count where i == bytes.count || bytes[i] == 10 {
                lineNo += 1
                let line = bytes[start..<i]
                start = i + 1
                if line.allSatisfy({ $0 == 32 || $0 == 13 || $0 == 9 }) { continue }
                lines.append(Array(line))
                numbers.append(lineNo)
                if lines.count == batch {
                    try send()
                    // Progress on stderr in tenths of the file (tests kill components at a share).
                    let tenth = i * 10 / max(bytes.count, 1)
                    if tenth > reported {
                        reported = tenth
                        CLI.printErr("published \(tenth * 10)% (\(received) events)")
                    }
                }
            }
            try send()
            try timedFlush()
            let t = try until.map { try CLI.parseTime($0, option: "--until") }
            try gw.advance(until: max(t ?? .min, gw.watermark, 0))
            let seconds = Double((ContinuousClock.now - began).components.attoseconds) / 1e18 + Double((ContinuousClock.now - began).components.seconds)
            CLI.printErr("published \(received) events (\(late) late, \(dups) duplicates) in \(gw.published) messages, \(String(format: "%.2f", seconds)) s, \(Int(Double(received) / max(seconds, 1e-9))) events/s; watermark \(EventTime.format(gw.watermark)); \(acks.count) flushes, ack p50 \(String(format: "%.1f", percentile(acks, 0.5))) ms, p99 \(String(format: "%.1f", percentile(acks, 0.99))) ms")
        }
    }

    struct Alerts: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "alerts",
            abstract: "Print the cluster's alerts in canonical order once every stage has processed event time through --through.")
        @Option(help: "NATS servers, comma-separated.") var cluster: String
        @Option(help: "Wait until every stage is complete through this time (RFC 3339 or epoch ms), print, and exit.") var through: String
        @Option(help: "Give up (exit 1) after this long.") var timeout = "120s"

        func run() throws {
            let c = try ClusterCommand.connect(cluster, name: "tripline cluster alerts")
            let loaded = try ClusterSetup.load(c)
            let collector = try ClusterAlertCollector(connection: c, config: loaded.config)
            let target = try CLI.parseTime(through, option: "--through")
            let limit = ContinuousClock.now + .milliseconds(Int64(try CLI.parseDuration(timeout, option: "--timeout")))
            let out = FileHandle.standardOutput
            while true {
                let ready = try collector.poll(timeout: .milliseconds(200))
                if !ready.isEmpty { out.write(Data(ready.map { $0.line + "\n" }.joined().utf8)) }
                if collector.completeThrough >= target { break }
                if ContinuousClock.now > limit {
                    CLI.printErr("tripline: the stages are complete only through \(EventTime.format(collector.completeThrough)); is a worker running for every stage?")
                    throw ExitCode(1)
                }
            }
            CLI.printErr("complete through \(EventTime.format(collector.completeThrough)); \(collector.duplicatesDropped) re-published alerts dropped")
        }
    }
}

extension ClusterCommand {
    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "status",
            abstract: "Print the cluster's settings, its streams (messages, leader, replicas) and who holds each stage, as JSON.")
        @Option(help: "NATS servers, comma-separated.") var cluster: String

        func run() throws {
            let c = try ClusterCommand.connect(cluster, name: "tripline cluster status")
            let loaded = try ClusterSetup.load(c)
            var streams: [String: Any] = [:]
            for s in [ClusterNames.events, ClusterNames.alerts, ClusterNames.catalog] {
                let st = try c.streamState(s)
                streams[s] = ["messages": st.messages, "last_sequence": st.lastSequence, "leader": st.leader as Any, "replicas": st.replicas]
            }
            let leases = try c.keyValue(bucket: ClusterNames.leases)
            var stages: [String: Any] = [:]
            for s in loaded.config.stages { stages[s] = try leases.get(s).map { String(decoding: $0.value, as: UTF8.self) } ?? NSNull() }
            let workers = try leases.keys().filter { $0.hasPrefix("w.") }.map { String($0.dropFirst(2)) }.sorted()
            let doc: [String: Any] = ["partitions": loaded.config.partitions, "allowed_lateness_ms": loaded.config.allowedLateness,
                                      "dedup_window_ms": loaded.config.dedupWindow, "streams": streams, "stages": stages, "workers": workers]
            let data = try JSONSerialization.data(withJSONObject: doc, options: [.sortedKeys, .prettyPrinted])
            print(String(decoding: data, as: UTF8.self))
        }
    }
}

struct Worker: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Run a cluster worker: take partition leases, run their engines from the EV stream, publish alerts.")
    @Option(help: "NATS servers, comma-separated.") var cluster: String
    @Option(help: "This worker's name in leases and logs (default: host and process id).") var id: String?
    @Option(name: .customLong("max-stages"), help: "Hold at most this many stages (partitions, and the cross-entity stage).") var maxStages: Int?

    func run() throws {
        let name = id ?? "\(ProcessInfo.processInfo.hostName)-\(getpid())"
        let c = try ClusterCommand.connect(cluster, name: "tripline worker \(name)")
        let w = try ClusterWorker(connection: c, id: name, maxStages: maxStages)
        w.log = { CLI.printErr("worker \(name): \($0)") }
        let stop = DispatchSource.makeSignalSource(signal: SIGTERM, queue: .global())
        signal(SIGTERM, SIG_IGN)
        stop.setEventHandler { w.stop() }
        stop.resume()
        CLI.printErr("worker \(name): running")
        try withExtendedLifetime(stop) { try w.run() }
    }
}

/// The q-quantile (nearest rank) of `xs`; 0 when empty.
func percentile(_ xs: [Double], _ q: Double) -> Double {
    guard !xs.isEmpty else { return 0 }
    let s = xs.sorted()
    return s[min(s.count - 1, max(0, Int((q * Double(s.count)).rounded(.up)) - 1))]
}

extension ClusterCommand {
    /// `tripline cluster up`: a whole cluster on one machine for a developer.
    struct Up: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "up",
            abstract: "Start a cluster on this machine: nats-server processes with JetStream routed together on loopback, the cluster's streams and catalog, workers, and an API node (tripline serve --cluster) with an admin token; runs until interrupted.")
        @Option(help: "nats-server processes (1, or 3 for R3 streams that survive the loss of one).") var nodes = 3
        @Option(help: "Worker processes.") var workers = 3
        @Option(help: "Partitions.") var partitions = 24
        @Option(help: "Folder for the servers' JetStream data and the logs (created if missing).") var data: String
        @Option(help: "First client port; server i listens on PORT+i, and routes on PORT+100+i.") var port = 4222
        @Option(name: .customLong("api-port"), help: "The API node's HTTP port (on 127.0.0.1).") var apiPort = 8080
        @Option(name: .customLong("allowed-lateness"), help: "Apply events up to this much out of order.") var allowedLateness = "0s"
        @Option(help: "Zones (GeoJSON).") var zones: String?
        @Option(help: "Entities (NDJSON).") var entities: String?
        @Option(help: "Rules (YAML or JSON).") var rules: String?

        func run() throws {
            guard nodes == 1 || nodes == 3 else { throw ValidationError("--nodes must be 1 or 3") }
            guard workers >= 1 else { throw ValidationError("--workers must be at least 1") }
            let root = URL(fileURLWithPath: data)
            try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
            guard let nats = ["/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
                throw ValidationError("nats-server is not installed: apt-get install nats-server")
            }
            var children: [Process] = []
            func spawn(_ exe: String, _ args: [String], log: String) throws -> Process {
                let p = Process()
                p.executableURL = URL(fileURLWithPath: exe)
                p.arguments = args
                _ = FileManager.default.createFile(atPath: root.appendingPathComponent(log).path, contents: nil)
                let h = try FileHandle(forWritingTo: root.appendingPathComponent(log))
                p.standardOutput = h
                p.standardError = h
                try p.run()
                children.append(p)
                return p
            }
            // Workers first (they give their leases back while the servers still run), then
            // the servers.
            func stopAll() {
                for p in children.reversed() {
                    if p.isRunning { kill(p.processIdentifier, SIGTERM) }
                    p.waitUntilExit()
                }
            }
            let urls = (0..<nodes).map { "nats://127.0.0.1:\(port + $0)" }.joined(separator: ",")
            let me = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
            do {
                for i in 0..<nodes {
                    var args = ["-js", "-a", "127.0.0.1", "-p", String(port + i), "-sd", root.appendingPathComponent("n\(i)").path, "-n", "n\(i)"]
                    if nodes > 1 {
                        args += ["--cluster_name", "tripline", "--cluster", "nats://127.0.0.1:\(port + 100 + i)",
                                 "--routes", (0..<nodes).filter { $0 != i }.map { "nats://127.0.0.1:\(port + 100 + $0)" }.joined(separator: ",")]
                    }
                    _ = try spawn(nats, args, log: "nats-\(i).log")
                }
                // Until JetStream has a leader: creating the streams is retried for 30 s.
                var createArgs = ["cluster", "create", "--cluster", urls, "--partitions", String(partitions), "--replicas", String(min(3, nodes)),
                                  "--allowed-lateness", allowedLateness]
                if let zones { createArgs += ["--zones", zones] }
                if let entities { createArgs += ["--entities", entities] }
                if let rules { createArgs += ["--rules", rules] }
                let deadline = ContinuousClock.now + .seconds(30)
                while true {
                    let p = Process()
                    p.executableURL = URL(fileURLWithPath: me)
                    p.arguments = createArgs
                    p.standardOutput = FileHandle.nullDevice
                    let err = Pipe()
                    p.standardError = err
                    try p.run()
                    let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                    p.waitUntilExit()
                    if p.terminationStatus == 0 { break }
                    if ContinuousClock.now > deadline { throw ValidationError("could not create the cluster: \(text)") }
                    Thread.sleep(forTimeInterval: 0.5)
                }
                for i in 0..<workers { _ = try spawn(me, ["worker", "--cluster", urls, "--id", "w\(i)"], log: "worker-\(i).log") }
            } catch {
                stopAll()
                throw error
            }
            // The API node, with an admin token (a new one each time; its data folder keeps
            // the store, so the node takes over the cluster's gateway where it left off).
            let api = root.appendingPathComponent("api").path
            let token: String
            do {
                let p = Process()
                p.executableURL = URL(fileURLWithPath: me)
                p.arguments = ["token", "create", "--data", api, "--role", "admin", "--name", "cluster-up"]
                let out = Pipe()
                p.standardOutput = out
                p.standardError = FileHandle.nullDevice
                try p.run()
                token = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                p.waitUntilExit()
                guard p.terminationStatus == 0 else { throw ValidationError("could not create the API node's token in \(api)") }
                let node = try spawn(me, ["serve", "--data", api, "--port", String(apiPort), "--cluster", urls, "--allowed-lateness", allowedLateness], log: "api.log")
                let deadline = ContinuousClock.now + .seconds(60)
                while !Self.listening(apiPort) {
                    guard node.isRunning, ContinuousClock.now < deadline else {
                        throw ValidationError("the API node did not start; see \(root.appendingPathComponent("api.log").path)")
                    }
                    Thread.sleep(forTimeInterval: 0.1)
                }
            } catch {
                stopAll()
                throw error
            }
            FileHandle.standardOutput.write(Data("""
            cluster up: \(nodes) nats-server(s) at \(urls), \(workers) worker(s), \(partitions) partitions; logs in \(root.path)
              API:             http://127.0.0.1:\(apiPort) (the same API as a single server; docs/cluster.md says what differs)
              admin token:     \(token)
              post events:     curl -H "Authorization: Bearer $TOKEN" --data-binary @EVENTS.ndjson http://127.0.0.1:\(apiPort)/v1/events
              status:          tripline cluster status --cluster \(urls)
            Ctrl-C stops everything (the data folder stays).

            """.utf8))
            let stop = DispatchSemaphore(value: 0)
            let sources = [SIGINT, SIGTERM].map { sig -> any DispatchSourceSignal in
                signal(sig, SIG_IGN)
                let s = DispatchSource.makeSignalSource(signal: sig, queue: .global())
                s.setEventHandler { stop.signal() }
                s.resume()
                return s
            }
            // (The signal sources must live until the wait ends: an optimised build would
            // otherwise free them, and the signal would be ignored.)
            withExtendedLifetime(sources) { stop.wait() }
            stopAll()
        }

        /// Whether something accepts connections on 127.0.0.1:`port`.
        static func listening(_ port: Int) -> Bool {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { return false }
            defer { close(fd) }
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = in_port_t(UInt16(port).bigEndian)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            return withUnsafePointer(to: &addr) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
            }
        }
    }
}
