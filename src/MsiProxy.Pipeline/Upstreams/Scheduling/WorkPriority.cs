namespace MsiProxy.Upstreams.Scheduling;

/// <summary>Who is waiting for an upstream attempt: a caller (<see cref="Foreground"/>) or the proxy itself.</summary>
internal enum WorkPriority
{
    /// <summary>A caller is waiting for the answer: a token miss or a forwarded request.</summary>
    Foreground,

    /// <summary>Nobody is waiting: refresh and prefetch. Takes only capacity foreground work leaves unused.</summary>
    Background,
}
