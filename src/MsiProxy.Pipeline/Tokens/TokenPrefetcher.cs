using Microsoft.Extensions.Options;
using MsiProxy.Caching;
using MsiProxy.Clients;
using MsiProxy.Configuration;
using MsiProxy.Requests;
using MsiProxy.Upstreams;

namespace MsiProxy.Tokens;

/// <summary>
/// "First token without waiting": when a client registers, its identities × warm resources are fetched in the
/// background (through the same upstream limits), so its first call is a cache hit.
/// </summary>
internal sealed class TokenPrefetcher(ClientRegistry registry, TokenCache cache, UpstreamClient upstream,
    IOptionsMonitor<MsiProxyOptions> options, ILogger<TokenPrefetcher> logger) : IHostedService
{
    public const string PrefetchApiVersion = "2018-02-01";

    public Task StartAsync(CancellationToken cancellationToken)
    {
        registry.Registered += OnRegistered;
        foreach (var client in registry.All)
        {
            Warm(client);
        }

        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        registry.Registered -= OnRegistered;
        return Task.CompletedTask;
    }

    private void OnRegistered(ClientRegistration client) => Warm(client);

    /// <summary>Starts the background fetches for <paramref name="client"/>; returns how many were started.</summary>
    public int Warm(ClientRegistration client)
    {
        var resources = options.CurrentValue.Prefetch.Resources.Concat(client.Prefetch).Distinct(StringComparer.Ordinal).ToList();
        if (resources.Count == 0 || !client.Ready)
        {
            return 0;
        }

        var identities = client.Identities.Where(b => !b.IsAny).Select(b => b.Selector).Append(client.DefaultIdentity).Distinct().ToList();
        var started = 0;
        foreach (var identity in identities)
        {
            foreach (var resource in resources)
            {
                var request = new TokenRequest(PrefetchApiVersion, resource, identity, BypassCache: false, Authority: null);
                var key = new TokenCacheKey(identity, resource, TokenCacheKey.FamilyOf(PrefetchApiVersion), null);
                var work = UpstreamRequest.InBackground(request.UpstreamTarget(identity, bypassCache: false), client.Name);
                if (cache.Prefetch(key, (_, _) => upstream.SendAsync(work, CancellationToken.None)))
                {
                    started++;
                }
            }
        }

        if (started > 0)
        {
            logger.LogInformation("Prefetching {Count} tokens for client {ClientName}", started, client.Name);
        }

        return started;
    }
}
