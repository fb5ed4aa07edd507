using System.Threading.Channels;
using MsiProxy.Kubernetes.Bindings;

namespace MsiProxy.Kubernetes.Secrets;

/// <summary>
/// The last read of each Secret that bindings name for this node's pods: a digest, or why there is none. Pod
/// registration looks here (synchronously, under its own lock) and asks for a read when a Secret was never read;
/// <see cref="IdentityHeaderSecretRefresher"/> does the reading.
/// </summary>
internal sealed class IdentityHeaderSecrets
{
    private readonly Lock _lock = new();
    private readonly Dictionary<SecretReference, IdentityHeaderRead> _reads = [];
    private readonly Channel<bool> _requests = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });

    /// <summary>The last read of <paramref name="reference"/>, or null when it was never read (a read is then asked for).</summary>
    public IdentityHeaderRead? Get(SecretReference reference)
    {
        lock (_lock)
        {
            if (_reads.TryGetValue(reference, out var read))
            {
                return read;
            }
        }

        RequestRead();
        return null;
    }

    /// <summary>Asks the refresher for a pass now (a new Secret to read, or a relist that should re-read them all).</summary>
    public void RequestRead() => _requests.Writer.TryWrite(true);

    /// <summary>Records a read; returns the previous one (null if none), so the caller can tell what changed.</summary>
    public IdentityHeaderRead? Set(SecretReference reference, IdentityHeaderRead read)
    {
        lock (_lock)
        {
            _reads.TryGetValue(reference, out var previous);
            _reads[reference] = read;
            return previous;
        }
    }

    /// <summary>Forgets Secrets no pod needs any more, so a later need reads them afresh.</summary>
    public void Retain(IReadOnlySet<SecretReference> wanted)
    {
        lock (_lock)
        {
            foreach (var reference in _reads.Keys.Where(r => !wanted.Contains(r)).ToList())
            {
                _reads.Remove(reference);
            }
        }
    }

    /// <summary>Waits until a read is asked for or <paramref name="timeout"/> passes.</summary>
    public async Task WaitForRequestAsync(TimeSpan timeout, TimeProvider time, CancellationToken cancellationToken)
    {
        using var interval = new CancellationTokenSource(timeout, time);
        using var wait = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, interval.Token);
        try
        {
            await _requests.Reader.ReadAsync(wait.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            // the interval is up
        }
    }
}
