import Foundation

/// Small Python programs that make real traffic in privileged tests and benchmarks, run inside an
/// endpoint's network namespace (or the host's). Every server stops by itself after `seconds`.
public enum TrafficScripts {
    /// A TCP server on `ip:port` answering "ok" to every connection.
    public static func tcpServer(ip: String, port: Int, seconds: Double) -> String {
        """
        import socket,time
        s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1); s.bind(("\(ip)",\(port))); s.listen(64); s.settimeout(\(seconds))
        end=time.time()+\(seconds)
        while time.time()<end:
            try:
                c,_=s.accept(); c.sendall(b"ok"); c.close()
            except Exception: break
        """
    }

    /// A UDP server on `ip:port` echoing every datagram.
    public static func udpServer(ip: String, port: Int, seconds: Double) -> String {
        """
        import socket,time
        s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(("\(ip)",\(port))); s.settimeout(\(seconds))
        end=time.time()+\(seconds)
        while time.time()<end:
            try:
                d,a=s.recvfrom(100); s.sendto(d,a)
            except Exception: break
        """
    }

    /// Connects `count` times, `interval` seconds apart; prints how many connections got "ok".
    public static func tcpProbe(ip: String, port: Int, count: Int = 1, interval: Double = 0) -> String {
        """
        import socket,time
        n=0
        for i in range(\(count)):
            s=socket.socket(); s.settimeout(1.0)
            try:
                s.connect(("\(ip)",\(port))); n+= s.recv(2)==b"ok"
            except Exception: pass
            s.close(); time.sleep(\(interval))
        print(n)
        """
    }

    /// Sends one datagram; prints 1 when the echo came back, 0 otherwise.
    public static func udpProbe(ip: String, port: Int) -> String {
        """
        import socket
        s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.settimeout(1.0)
        s.sendto(b"x",("\(ip)",\(port)))
        try:
            s.recvfrom(10); print(1)
        except Exception: print(0)
        """
    }

    /// The count a probe printed (-1 when it printed none).
    public static func count(_ output: String) -> Int {
        Int(output.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
    }
}
