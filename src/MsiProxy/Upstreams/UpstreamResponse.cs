namespace MsiProxy.Upstreams;

/// <summary>
/// The final answer of an upstream (after retries), buffered; or one the proxy made for it when none could answer
/// (502, 503, 504, or 429 when the client's own queue was full).
/// </summary>
internal sealed record UpstreamResponse(int Status, byte[] Body, string? ContentType)
{
    public TimeSpan? RetryAfter { get; init; }

    /// <summary>The upstream base URL that answered, when one did.</summary>
    public string? Upstream { get; init; }

    /// <summary>The upstream's <c>x-ms-request-id</c>.</summary>
    public string? RequestId { get; init; }

    public int Attempts { get; init; }

    /// <summary>Why the proxy produced this response itself (no_upstream, circuit_open, unreachable, timeout, queue_full, over_budget), or null.</summary>
    public string? ProxyError { get; init; }

    public bool IsSuccess => Status == 200;
}
