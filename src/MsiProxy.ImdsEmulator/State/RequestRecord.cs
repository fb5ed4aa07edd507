namespace MsiProxy.ImdsEmulator;

/// <summary>
/// One request as the emulator saw it. Logged on arrival so tests can see requests still in flight
/// (stalled ones); <see cref="Status"/> is filled in when the answer is sent.
/// </summary>
public sealed class RequestRecord
{
    private int _status;
    private int _completed;

    internal RequestRecord(
        long sequence,
        string method,
        string path,
        string query,
        string rawTarget,
        IReadOnlyDictionary<string, string> headers,
        string callerAddress,
        int callerPort,
        DateTimeOffset arrivedAt,
        int concurrencyAtArrival)
    {
        Sequence = sequence;
        Method = method;
        Path = path;
        Query = query;
        RawTarget = rawTarget;
        Headers = headers;
        CallerAddress = callerAddress;
        CallerPort = callerPort;
        ArrivedAt = arrivedAt;
        ConcurrencyAtArrival = concurrencyAtArrival;
    }

    public long Sequence { get; }

    public string Method { get; }

    public string Path { get; }

    /// <summary>The raw query string as received (still percent-encoded), including the leading '?'.</summary>
    public string Query { get; }

    /// <summary>
    /// The request target exactly as it arrived on the wire (path and query, nothing decoded): what a proxy in front
    /// really sent, where <see cref="Path"/> is the server's decoded reading of it.
    /// </summary>
    public string RawTarget { get; }

    /// <summary>Request headers, names as sent, several values joined with ", ".</summary>
    public IReadOnlyDictionary<string, string> Headers { get; }

    public string CallerAddress { get; }

    public int CallerPort { get; }

    public DateTimeOffset ArrivedAt { get; }

    /// <summary>Requests in flight when this one arrived, itself included.</summary>
    public int ConcurrencyAtArrival { get; }

    /// <summary>Status code sent; null while the request is in flight or when the connection was dropped.</summary>
    public int? Status => Volatile.Read(ref _completed) == 1 && _status != 0 ? _status : null;

    /// <summary>True once the request finished, whether answered or dropped.</summary>
    public bool Completed => Volatile.Read(ref _completed) == 1;

    /// <summary>Name of the fault applied to this request, if any (status, delay, drop, stall).</summary>
    public string? Fault { get; internal set; }

    internal void Complete(int status)
    {
        _status = status;
        Volatile.Write(ref _completed, 1);
    }
}
