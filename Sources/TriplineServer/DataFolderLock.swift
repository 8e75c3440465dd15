import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// An exclusive lock on a data folder, held for the life of the process: two servers on one
/// folder would each apply only part of the events while sharing one log. It is `flock` on
/// `tripline.lock` in the folder, which the kernel releases when the process ends however it
/// ends (kill -9 included), so a stale lock file never keeps a restarted server out.
public final class DataFolderLock: @unchecked Sendable {
    public struct Held: Error, CustomStringConvertible {
        public var path: String
        public var pid: String?
        public var description: String {
            "the data folder is in use: another tripline process (\(pid.map { "PID \($0)" } ?? "PID unknown")) holds \(path); stop it first, or give this server another --data folder"
        }
    }

    private let fd: Int32
    public let path: String

    /// Takes the lock or throws `Held` naming the holder's PID.
    public init(directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        path = (directory as NSString).appendingPathComponent("tripline.lock")
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let e = errno
            var buf = [UInt8](repeating: 0, count: 32)
            let n = pread(fd, &buf, 31, 0)
            close(fd)
            if e == EWOULDBLOCK {
                let pid = n > 0 ? String(decoding: buf[0..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) : nil
                throw Held(path: path, pid: pid?.isEmpty == false ? pid : nil)
            }
            throw POSIXError(POSIXErrorCode(rawValue: e) ?? .EIO)
        }
        let text = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = text.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
    }

    deinit { close(fd) }
}
