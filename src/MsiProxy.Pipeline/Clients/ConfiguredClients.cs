using Microsoft.Extensions.Options;
using MsiProxy.Configuration;

namespace MsiProxy.Clients;

/// <summary>Keeps the registry in step with <c>MsiProxy:Clients</c>, at start-up and on every configuration reload.</summary>
internal sealed class ConfiguredClients(ClientRegistry registry, IOptionsMonitor<MsiProxyOptions> options, ILogger<ConfiguredClients> logger)
    : IHostedService, IDisposable
{
    private IDisposable? _subscription;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        Apply(options.CurrentValue);
        _subscription = options.OnChange(Apply);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public static ClientRegistration ToRegistration(ClientOptions client) =>
        ProofPolicies.TryRead(client.Proof, client.IdentityHeaderSha256, out var proof, out var digest, out var error)
            ? new()
            {
                Name = client.Name!,
                Address = AddressRange.Parse(client.Address!),
                Identities = IdentityBinding.ParseAll(client.Identities),
                Prefetch = client.Prefetch,
                Endpoints = client.Endpoints,
                Proof = proof,
                IdentityHeader = digest,
                Source = RegistrationSources.Configuration,
            }
            : throw new FormatException($"client {client.Name}: {error}");

    private void Apply(MsiProxyOptions current)
    {
        List<ClientRegistration> wanted;
        try
        {
            wanted = [.. current.Clients.Select(ToRegistration)];
        }
        catch (FormatException ex)
        {
            // Start-up validation rejects this; on a reload keep the clients we have rather than drop them all.
            logger.LogError("Ignoring a configuration reload with invalid clients: {Error}", ex.Message);
            return;
        }

        var names = wanted.Select(w => w.Name).ToHashSet(StringComparer.Ordinal);
        registry.RemoveWhere(r => r.Source == RegistrationSources.Configuration && !names.Contains(r.Name));
        registry.RegisterAll([.. wanted.Where(registration =>
            registry.Get(registration.Name) is not { } existing || existing.Address != registration.Address
            || !existing.Identities.SequenceEqual(registration.Identities) || !existing.Prefetch.SequenceEqual(registration.Prefetch)
            || !existing.Endpoints.SequenceEqual(registration.Endpoints) || existing.Proof != registration.Proof
            || !Equals(existing.IdentityHeader, registration.IdentityHeader))]);
    }

    public void Dispose() => _subscription?.Dispose();
}
