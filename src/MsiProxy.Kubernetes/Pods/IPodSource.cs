namespace MsiProxy.Kubernetes.Pods;

/// <summary>The pods scheduled on this node, as a list and then a watch from the list's resourceVersion.</summary>
internal interface IPodSource
{
    Task<PodList> ListAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Streams changes after <paramref name="resourceVersion"/> until the server ends the watch (the sequence ends).
    /// Throws <see cref="WatchExpiredException"/> when that version is too old (410 Gone): the caller must relist.
    /// </summary>
    IAsyncEnumerable<PodEvent> WatchAsync(string resourceVersion, CancellationToken cancellationToken);
}

internal sealed record PodList(IReadOnlyList<PodInfo> Pods, string ResourceVersion);

internal enum PodEventKind
{
    Upserted,
    Deleted,

    /// <summary>Only the resourceVersion moved on (a BOOKMARK).</summary>
    Bookmark,
}

internal sealed record PodEvent(PodEventKind Kind, PodInfo? Pod, string? ResourceVersion);

/// <summary>The API server no longer has the history the watch asked for (HTTP 410, or an ERROR event with code 410).</summary>
internal sealed class WatchExpiredException : Exception
{
    public WatchExpiredException()
        : base("The watch's resourceVersion is too old (410 Gone)")
    {
    }

    public WatchExpiredException(string message)
        : base(message)
    {
    }

    public WatchExpiredException(string message, Exception inner)
        : base(message, inner)
    {
    }
}
