using System.Net;
using System.Runtime.CompilerServices;
using System.Text.Json;
using MsiProxy.Kubernetes.Api;

namespace MsiProxy.Kubernetes.Pods;

/// <summary>
/// Lists and watches <c>/api/v1/pods?fieldSelector=spec.nodeName=&lt;node&gt;</c>: only this node's pods, so the proxy needs
/// nothing but get/list/watch on pods and a node's worth of memory.
/// </summary>
internal sealed class KubernetesPodSource(KubernetesApi api, string nodeName, TimeSpan watchTimeout) : IPodSource
{
    private string FieldSelector => $"spec.nodeName={nodeName}";

    public async Task<PodList> ListAsync(CancellationToken cancellationToken)
    {
        ApiPodList list;
        try
        {
            list = await api.ListPodsAsync(FieldSelector, cancellationToken).ConfigureAwait(false);
        }
        catch (KubernetesApiException ex) when (ex.Status == HttpStatusCode.Gone)
        {
            throw new WatchExpiredException("The pod list answered 410 Gone", ex);
        }

        var version = list.Metadata?.ResourceVersion;
        if (string.IsNullOrEmpty(version))
        {
            throw new FormatException("The pod list has no metadata.resourceVersion to watch from");
        }

        return new PodList([.. (list.Items ?? []).Select(PodInfo.From)], version);
    }

    public async IAsyncEnumerable<PodEvent> WatchAsync(string resourceVersion, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var lines = api.WatchPodsAsync(FieldSelector, resourceVersion, (int)Math.Max(1, watchTimeout.TotalSeconds), cancellationToken);
        await using var enumerator = lines.GetAsyncEnumerator(cancellationToken);
        while (true)
        {
            try
            {
                if (!await enumerator.MoveNextAsync().ConfigureAwait(false))
                {
                    yield break;
                }
            }
            catch (KubernetesApiException ex) when (ex.Status == HttpStatusCode.Gone)
            {
                throw new WatchExpiredException($"The watch from resourceVersion {resourceVersion} answered 410 Gone", ex);
            }
            catch (FormatException ex)
            {
                // An undecodable line: this watch can no longer be trusted; the watcher backs off and relists.
                throw new KubernetesWatchException($"The watch stream could not be read: {ex.Message}", ex);
            }

            yield return Event(enumerator.Current);
        }
    }

    private static PodEvent Event(ApiWatchLine line)
    {
        if (line.Type == "ERROR")
        {
            var status = line.Object.Deserialize(KubernetesJson.Default.ApiStatus);
            throw status?.Code == (int)HttpStatusCode.Gone
                ? new WatchExpiredException($"The watch ended with an ERROR event: {status.Message}")
                : new KubernetesWatchException($"The watch ended with an ERROR event: {status?.Message}");
        }

        ApiPod pod;
        try
        {
            pod = line.Object.Deserialize(KubernetesJson.Default.ApiPod)!;
        }
        catch (JsonException ex)
        {
            throw new KubernetesWatchException($"A {line.Type} event's object is not a pod: {ex.Message}", ex);
        }

        return line.Type switch
        {
            "ADDED" or "MODIFIED" => new PodEvent(PodEventKind.Upserted, PodInfo.From(pod), pod.Metadata?.ResourceVersion),
            "DELETED" => new PodEvent(PodEventKind.Deleted, PodInfo.From(pod), pod.Metadata?.ResourceVersion),
            "BOOKMARK" => new PodEvent(PodEventKind.Bookmark, null, pod.Metadata?.ResourceVersion),
            _ => throw new KubernetesWatchException($"The watch sent an event of unknown type {line.Type}"),
        };
    }
}

/// <summary>A watch that failed for a reason other than an expired resourceVersion; the watcher backs off and relists.</summary>
internal sealed class KubernetesWatchException : Exception
{
    public KubernetesWatchException()
    {
    }

    public KubernetesWatchException(string message)
        : base(message)
    {
    }

    public KubernetesWatchException(string message, Exception inner)
        : base(message, inner)
    {
    }
}
