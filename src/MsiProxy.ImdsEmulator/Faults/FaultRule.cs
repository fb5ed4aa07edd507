namespace MsiProxy.ImdsEmulator;

/// <summary>
/// A scripted misbehaviour applied to the next <see cref="Times"/> matching requests. Kinds combine in this order:
/// <see cref="Delay"/> first, then <see cref="Drop"/>, <see cref="Stall"/> or <see cref="Status"/>; a rule with only a
/// delay lets the request continue normally afterwards.
/// </summary>
public sealed class FaultRule
{
    /// <summary>Path prefix to match, case-insensitive ("/metadata/identity" matches the token endpoint).</summary>
    public string PathPrefix { get; set; } = "/metadata";

    /// <summary>When set, only requests whose decoded <c>resource</c> equals this value match.</summary>
    public string? Resource { get; set; }

    /// <summary>When set, only requests carrying every one of these decoded query parameters with these values match.</summary>
    public Dictionary<string, string>? Query { get; set; }

    /// <summary>Status to answer with (404, 410, 429, 500, 503…); 0 means no status fault.</summary>
    public int Status { get; set; }

    /// <summary>Sent as a Retry-After header in whole seconds (rounded up).</summary>
    public TimeSpan? RetryAfter { get; set; }

    /// <summary>Latency added before anything else happens.</summary>
    public TimeSpan Delay { get; set; }

    /// <summary>Abort the connection without an answer.</summary>
    public bool Drop { get; set; }

    /// <summary>Never answer; the request hangs until the caller gives up or the emulator stops.</summary>
    public bool Stall { get; set; }

    /// <summary>Response body for a status fault; defaults to an IMDS-style JSON error for the status.</summary>
    public string? Body { get; set; }

    /// <summary>How many matching requests this rule applies to; 0 or less means until the faults are cleared.</summary>
    public int Times { get; set; } = 1;

    /// <summary>Short name of what the rule does, for the request log.</summary>
    public string Describe()
    {
        var parts = new List<string>(3);
        if (Delay > TimeSpan.Zero)
        {
            parts.Add($"delay {Delay.TotalMilliseconds:0}ms");
        }

        if (Drop)
        {
            parts.Add("drop");
        }
        else if (Stall)
        {
            parts.Add("stall");
        }
        else if (Status != 0)
        {
            parts.Add($"status {Status}");
        }

        return parts.Count == 0 ? "none" : string.Join(", ", parts);
    }
}
