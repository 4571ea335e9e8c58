#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Filesystem chores around the unix listener: a socket file left by a crashed agent makes
/// bind fail with EADDRINUSE, so it is removed first; anything that is not a socket is left
/// alone so a typo in the path can never delete a real file.
enum UnixSocketFile {
    static func prepare(path: String) throws {
        var info = stat()
        if lstat(path, &info) == 0 {
            guard (info.st_mode & S_IFMT) == S_IFSOCK else { throw HubbleServerError.socketPathOccupied(path) }
            unlink(path)
        }
        createParentDirectory(of: path)
    }

    /// Best effort `mkdir -p` of the parent (e.g. /run/membrane after a reboot); bind reports the real error.
    private static func createParentDirectory(of path: String) {
        for slash in path.indices.dropFirst() where path[slash] == "/" {
            mkdir(String(path[..<slash]), 0o755)  // EEXIST for existing levels is fine
        }
    }
}
