using MsiProxy.Clients;

namespace MsiProxy.Caching;

/// <summary>
/// When a client goes away, every cached token that no remaining client could be served is dropped: a token
/// outlives the container it was fetched for only if someone else may have it anyway.
/// </summary>
internal sealed class DeregistrationPurge(ClientRegistry registry, TokenCache cache, ILogger<DeregistrationPurge> logger)
    : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        registry.Deregistered += Purge;
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        registry.Deregistered -= Purge;
        return Task.CompletedTask;
    }

    private void Purge(ClientRegistration gone)
    {
        var remaining = registry.All;
        if (remaining.Any(client => client.Identities.Any(binding => binding.IsAny)))
        {
            return; // someone may use any identity: every entry is still reachable
        }

        var reachable = remaining.SelectMany(client => client.Identities.Select(binding => binding.Selector).Append(client.DefaultIdentity)).ToHashSet();
        var removed = cache.RemoveWhere(key => !reachable.Contains(key.Identity), "deregistered");
        if (removed > 0)
        {
            logger.LogInformation("Client {ClientName} deregistered; purged {Count} cached tokens no other client may use", gone.Name, removed);
        }
    }
}
