using System.Collections.Concurrent;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using MsiProxy.Interception;

namespace MsiProxy.Docker;

internal static class WiringStatus
{
    public const string Pending = "pending";
    public const string Wired = "wired";
    public const string Failed = "failed";

    /// <summary>The labels cannot be used (bad identity, no address): never registered, not retried until the container changes.</summary>
    public const string Invalid = "invalid";
}

/// <summary>One client container's wiring, as the admin API and /readyz show it.</summary>
internal sealed record ClientWiringState(string ContainerId, string Name, string? Address, string Status, int Attempts, string? Detail,
    DateTimeOffset UpdatedAt, DateTimeOffset? NextAttemptAt);

/// <summary>What the monitor knows right now: engine connection, last reconcile, host interception, per-client wiring. Thread-safe reads.</summary>
internal sealed class MonitorState
{
    private readonly ConcurrentDictionary<string, ClientWiringState> _clients = new(StringComparer.Ordinal);

    public bool Connected { get; private set; }
    public string? EngineError { get; private set; }
    public DateTimeOffset? LastReconcile { get; private set; }
    public IReadOnlyList<string> DiscoveredUpstreams { get; set; } = [];

    /// <summary>The host rules after the last pass; null when the wiring is per container (Windows, None).</summary>
    public HostInterceptionState? HostInterception { get; set; }

    public IReadOnlyList<ClientWiringState> Clients => [.. _clients.Values.OrderBy(c => c.Name, StringComparer.Ordinal)];

    public ClientWiringState? Get(string containerId) => _clients.GetValueOrDefault(containerId);

    public void Set(ClientWiringState state) => _clients[state.ContainerId] = state;

    public void Remove(string containerId) => _clients.TryRemove(containerId, out _);

    public void Reconciled(DateTimeOffset at)
    {
        Connected = true;
        EngineError = null;
        LastReconcile = at;
    }

    public void Disconnected(string error)
    {
        Connected = false;
        EngineError = error;
    }
}

/// <summary>
/// /readyz: not ready until the first reconcile, while the engine is unreachable, or while the host rules are not in
/// place (then containers may not be kept away from IMDS). A client whose wiring failed is reported, not fatal.
/// </summary>
internal sealed class MonitorReadiness(MonitorState state) : IHealthCheck
{
    public const string Name = "docker-monitor";

    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken)
    {
        if (state.LastReconcile is null || !state.Connected)
        {
            return Task.FromResult(HealthCheckResult.Unhealthy(state.EngineError is { } error ? $"engine unreachable: {error}" : "not reconciled yet"));
        }

        if (state.HostInterception is { InPlace: false } host)
        {
            return Task.FromResult(HealthCheckResult.Unhealthy("host rules not in place: " + host.Detail));
        }

        var clients = state.Clients;
        // One container that cannot be wired is reported here (and in /admin/wiring and the metrics) but does not make the
        // proxy unready: the proxy still serves every other client on the node, and taking it out of service would hurt them.
        var broken = clients.Where(c => c.Status is WiringStatus.Failed or WiringStatus.Invalid).ToList();
        var wired = clients.Count(c => c.Status == WiringStatus.Wired);
        var summary = $"{wired}/{clients.Count} client containers wired, {state.DiscoveredUpstreams.Count} msiserviceclient upstreams, reconciled at {state.LastReconcile:O}";
        if (state.HostInterception is { } rules)
        {
            summary = $"host rules {rules.Detail}; " + summary;
        }

        if (broken.Count > 0)
        {
            summary += "; failing: " + string.Join("; ", broken.Select(c =>
                $"{c.Name} ({c.ContainerId[..Math.Min(12, c.ContainerId.Length)]}) {c.Status} after {c.Attempts} attempt(s): {c.Detail}"));
        }

        return Task.FromResult(HealthCheckResult.Healthy(summary));
    }
}
