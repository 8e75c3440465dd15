import CMosquitto
import Foundation

public struct MQTTError: Error, CustomStringConvertible, Sendable {
    public var call: String
    public var code: Int32
    public var description: String {
        "\(call): \(String(cString: mosquitto_strerror(code)))"
    }
    public init(call: String, code: Int32) {
        self.call = call
        self.code = code
    }
}

/// One MQTT client connection (libmosquitto, its own network thread). Publishing at QoS 1
/// completes when the broker's PUBACK arrives.
public final class MQTTClient: @unchecked Sendable {
    private let mosq: OpaquePointer
    private let lock = NSCondition()
    private var acked = Set<Int32>()
    private var connected = false
    private var lastConnectResult: Int32 = -1

    private static let initOnce: Void = { mosquitto_lib_init(); return () }()

    /// Connects to `host:port` (MQTT 3.1.1) and starts the client's network thread.
    public init(host: String, port: Int, clientId: String, timeout: Double = 5) throws {
        _ = Self.initOnce
        guard let m = mosquitto_new(clientId, true, nil) else { throw MQTTError(call: "mosquitto_new", code: MOSQ_ERR_NOMEM.rawValue) }
        mosq = m
        mosquitto_user_data_set(m, Unmanaged.passUnretained(self).toOpaque())
        mosquitto_connect_callback_set(m) { _, obj, rc in
            guard let obj else { return }
            let c = Unmanaged<MQTTClient>.fromOpaque(obj).takeUnretainedValue()
            c.lock.lock()
            c.connected = rc == 0
            c.lastConnectResult = rc
            c.lock.broadcast()
            c.lock.unlock()
        }
        mosquitto_disconnect_callback_set(m) { _, obj, _ in
            guard let obj else { return }
            let c = Unmanaged<MQTTClient>.fromOpaque(obj).takeUnretainedValue()
            c.lock.lock()
            c.connected = false
            c.lock.broadcast()
            c.lock.unlock()
        }
        mosquitto_publish_callback_set(m) { _, obj, mid in
            guard let obj else { return }
            let c = Unmanaged<MQTTClient>.fromOpaque(obj).takeUnretainedValue()
            c.lock.lock()
            c.acked.insert(mid)
            c.lock.broadcast()
            c.lock.unlock()
        }
        var rc = mosquitto_connect(m, host, Int32(port), 30)
        guard rc == MOSQ_ERR_SUCCESS.rawValue else {
            mosquitto_destroy(m)
            throw MQTTError(call: "mosquitto_connect \(host):\(port)", code: rc)
        }
        rc = mosquitto_loop_start(m)
        guard rc == MOSQ_ERR_SUCCESS.rawValue else {
            mosquitto_destroy(m)
            throw MQTTError(call: "mosquitto_loop_start", code: rc)
        }
        let deadline = Date().addingTimeInterval(timeout)
        lock.lock()
        while !connected && lastConnectResult < 0 && lock.wait(until: deadline) {}
        let ok = connected
        lock.unlock()
        if !ok {
            close()
            throw MQTTError(call: "CONNACK from \(host):\(port)", code: MOSQ_ERR_CONN_REFUSED.rawValue)
        }
    }

    /// Publishes at QoS 1 and waits for the broker's PUBACK (at most `timeout` seconds).
    public func publish(topic: String, payload: [UInt8], timeout: Double = 10) throws {
        var mid: Int32 = 0
        lock.lock()
        let rc = payload.withUnsafeBytes { mosquitto_publish(mosq, &mid, topic, Int32($0.count), $0.baseAddress, 1, false) }
        guard rc == MOSQ_ERR_SUCCESS.rawValue else {
            lock.unlock()
            throw MQTTError(call: "mosquitto_publish \(topic)", code: rc)
        }
        let deadline = Date().addingTimeInterval(timeout)
        while !acked.contains(mid) && lock.wait(until: deadline) {}
        let done = acked.remove(mid) != nil
        lock.unlock()
        if !done { throw MQTTError(call: "PUBACK for \(topic) within \(timeout) s", code: MOSQ_ERR_NO_CONN.rawValue) }
    }

    public var isConnected: Bool { lock.withLock { connected } }

    private var closed = false

    /// Disconnects and frees the client (once; later calls do nothing).
    public func close() {
        let first = lock.withLock { () -> Bool in
            defer { closed = true }
            return !closed
        }
        guard first else { return }
        mosquitto_disconnect(mosq)
        mosquitto_loop_stop(mosq, true)
        mosquitto_destroy(mosq)
    }
}
