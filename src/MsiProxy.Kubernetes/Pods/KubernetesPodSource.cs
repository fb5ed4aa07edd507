using System.Net;
using System.Runtime.CompilerServices;
using k8s;
using k8s.Autorest;
using k8s.Models;

namespace MsiProxy.Kubernetes.Pods;

/// <summary>
/// Lists and watches <c>/api/v1/pods?fieldSelector=spec.nodeName=&lt;node&gt;</c> with the official client: only this node's pods,
/// so the proxy needs nothing but get/list/watch on pods and a node's worth of memory.
/// </summary>
internal sealed class KubernetesPodSource(IKubernetes client, string nodeName, TimeSpan watchTimeout) : IPodSource
{
    private string FieldSelector => $"spec.nodeName={nodeName}";

    public async Task<PodList> ListAsync(CancellationToken cancellationToken)
    {
        V1PodList list;
        try
        {
            list = await client.CoreV1.ListPodForAllNamespacesAsync(fieldSelector: FieldSelector, cancellationToken: cancellationToken)
                .ConfigureAwait(false);
        }
        catch (HttpOperationException ex) when (ex.Response?.StatusCode == HttpStatusCode.Gone)
        {
            throw new WatchExpiredException("The pod list answered 410 Gone", ex);
        }

        var version = list.Metadata?.ResourceVersion;
        if (string.IsNullOrEmpty(version))
        {
            throw new FormatException("The pod list has no metadata.resourceVersion to watch from");
        }

        return new PodList([.. list.Items.Select(PodInfo.From)], version);
    }

    public async IAsyncEnumerable<PodEvent> WatchAsync(string resourceVersion, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        // The client reports ERROR events (a Status object) and undecodable lines through onError and keeps reading; either means
        // this watch can no longer be trusted, so stop it and let the caller decide between relisting and reconnecting.
        Exception? failure = null;
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var events = client.CoreV1.WatchListPodForAllNamespacesAsync(
            allowWatchBookmarks: true,
            fieldSelector: FieldSelector,
            resourceVersion: resourceVersion,
            timeoutSeconds: (int)Math.Max(1, watchTimeout.TotalSeconds),
            onError: ex =>
            {
                failure ??= ex;
                stop.Cancel();
            },
            cancellationToken: stop.Token);

        var enumerator = events.GetAsyncEnumerator(stop.Token);
        try
        {
            while (true)
            {
                bool more;
                try
                {
                    more = await enumerator.MoveNextAsync().ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (failure is not null && !cancellationToken.IsCancellationRequested)
                {
                    throw Translate(failure);
                }
                catch (HttpOperationException ex) when (ex.Response?.StatusCode == HttpStatusCode.Gone)
                {
                    throw new WatchExpiredException($"The watch from resourceVersion {resourceVersion} answered 410 Gone", ex);
                }

                if (failure is not null)
                {
                    throw Translate(failure);
                }

                if (!more)
                {
                    yield break;
                }

                var (type, pod) = enumerator.Current;
                yield return type switch
                {
                    WatchEventType.Added or WatchEventType.Modified => new PodEvent(PodEventKind.Upserted, PodInfo.From(pod), pod.Metadata?.ResourceVersion),
                    WatchEventType.Deleted => new PodEvent(PodEventKind.Deleted, PodInfo.From(pod), pod.Metadata?.ResourceVersion),
                    _ => new PodEvent(PodEventKind.Bookmark, null, pod?.Metadata?.ResourceVersion),
                };
            }
        }
        finally
        {
            await enumerator.DisposeAsync().ConfigureAwait(false);
        }
    }

    private static Exception Translate(Exception failure) => failure switch
    {
        KubernetesException { Status.Code: (int)HttpStatusCode.Gone } gone =>
            new WatchExpiredException($"The watch ended with an ERROR event: {gone.Status.Message}", gone),
        KubernetesException error => new KubernetesWatchException($"The watch ended with an ERROR event: {error.Status?.Message}", error),
        _ => new KubernetesWatchException($"The watch stream could not be read: {failure.Message}", failure),
    };
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
