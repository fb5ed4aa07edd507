namespace MsiProxy.Caching;

/// <summary>The final answer of an upstream (after retries), or one the proxy made up for it (502/503/504).</summary>
public sealed record UpstreamResponse(int Status, byte[] Body, string? ContentType)
{
    public TimeSpan? RetryAfter { get; init; }

    /// <summary>The upstream base URL that answered, when one did.</summary>
    public string? Upstream { get; init; }

    public int Attempts { get; init; }

    /// <summary>Why the proxy produced this response itself (no_upstream, circuit_open, unreachable, timeout), or null.</summary>
    public string? ProxyError { get; init; }

    public bool IsSuccess => Status == 200;
}
