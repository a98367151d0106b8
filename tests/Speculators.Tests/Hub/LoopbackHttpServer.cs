using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Speculators.Tests.Hub;

/// <summary>One HTTP request as the loopback server received it.</summary>
public sealed record HttpRequestRecord(string Method, string Target, IReadOnlyDictionary<string, string> Headers)
{
    /// <summary>The path part of the request target, still percent-encoded.</summary>
    public string RawPath => Target.Split('?')[0];
    public string Query => Target.Contains('?') ? Target[(Target.IndexOf('?') + 1)..] : "";
    public string? Header(string name) => Headers.TryGetValue(name, out var v) ? v : null;
}

/// <summary>An HTTP answer of the loopback server.</summary>
public sealed class HttpResponseSpec
{
    public int Status { get; init; } = 200;
    public List<KeyValuePair<string, string>> Headers { get; } = new();
    public byte[] Body { get; init; } = [];
    /// <summary>Send only this many body bytes, then drop the connection (Content-Length still announces the full body).</summary>
    public int? TruncateAfter { get; init; }
    public HttpResponseSpec With(string name, string value) { Headers.Add(new(name, value)); return this; }
}

/// <summary>
/// A minimal HTTP/1.1 server on 127.0.0.1 (raw TcpListener, one request per connection) for hub tests:
/// records every request and answers through <see cref="Handler"/>. No extra packages, no internet.
/// </summary>
public sealed class LoopbackHttpServer : IDisposable
{
    readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    readonly CancellationTokenSource _stop = new();
    readonly Task _loop;

    public LoopbackHttpServer(Func<HttpRequestRecord, HttpResponseSpec> handler)
    {
        Handler = handler;
        _listener.Start();
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _loop = Task.Run(AcceptLoop);
    }

    public Func<HttpRequestRecord, HttpResponseSpec> Handler { get; set; }
    public int Port { get; }
    public string BaseUrl => $"http://127.0.0.1:{Port}";
    public ConcurrentQueue<HttpRequestRecord> Requests { get; } = new();

    async Task AcceptLoop()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try { client = await _listener.AcceptTcpClientAsync(_stop.Token); }
            catch (Exception) { return; }
            _ = Task.Run(() => Serve(client));
        }
    }

    async Task Serve(TcpClient client)
    {
        using (client)
        {
            try
            {
                var stream = client.GetStream();
                var head = await ReadHead(stream);
                if (head is null) return;
                var lines = head.Split("\r\n");
                var first = lines[0].Split(' ');
                var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
                foreach (var line in lines.Skip(1))
                {
                    int colon = line.IndexOf(':');
                    if (colon > 0) headers[line[..colon].Trim()] = line[(colon + 1)..].Trim();
                }
                var request = new HttpRequestRecord(first[0], first[1], headers);
                Requests.Enqueue(request);
                HttpResponseSpec response;
                try { response = Handler(request); }
                catch (Exception e) { response = new HttpResponseSpec { Status = 500, Body = Encoding.UTF8.GetBytes(e.ToString()) }; }

                var sb = new StringBuilder();
                sb.Append($"HTTP/1.1 {response.Status} {Reason(response.Status)}\r\n");
                foreach (var (k, v) in response.Headers) sb.Append($"{k}: {v}\r\n");
                if (!response.Headers.Any(h => h.Key.Equals("Content-Length", StringComparison.OrdinalIgnoreCase)))
                    sb.Append($"Content-Length: {response.Body.Length}\r\n");
                sb.Append("Connection: close\r\n\r\n");
                await stream.WriteAsync(Encoding.ASCII.GetBytes(sb.ToString()));
                if (request.Method != "HEAD")
                {
                    int n = Math.Min(response.TruncateAfter ?? response.Body.Length, response.Body.Length);
                    await stream.WriteAsync(response.Body.AsMemory(0, n));
                    if (response.TruncateAfter is not null) { client.Client.LingerState = new LingerOption(true, 0); return; }
                }
                await stream.FlushAsync();
                client.Client.Shutdown(SocketShutdown.Send);
            }
            catch (IOException) { }
            catch (SocketException) { }
            catch (ObjectDisposedException) { }
        }
    }

    static async Task<string?> ReadHead(NetworkStream stream)
    {
        var buf = new List<byte>();
        var one = new byte[1];
        while (true)
        {
            int n = await stream.ReadAsync(one);
            if (n == 0) return null;
            buf.Add(one[0]);
            int c = buf.Count;
            if (c >= 4 && buf[c - 4] == '\r' && buf[c - 3] == '\n' && buf[c - 2] == '\r' && buf[c - 1] == '\n')
                return Encoding.ASCII.GetString(buf.ToArray(), 0, c - 4);
        }
    }

    static string Reason(int status) => status switch
    {
        200 => "OK", 206 => "Partial Content", 302 => "Found", 307 => "Temporary Redirect", 401 => "Unauthorized",
        403 => "Forbidden", 404 => "Not Found", 416 => "Range Not Satisfiable", 500 => "Internal Server Error", _ => "Status",
    };

    public void Dispose()
    {
        _stop.Cancel();
        _listener.Stop();
        try { _loop.Wait(2000); } catch (AggregateException) { }
        _stop.Dispose();
    }
}
