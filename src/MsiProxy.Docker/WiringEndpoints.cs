using System.Text.Json;
using System.Text.Json.Serialization;
using MsiProxy.Interception;

namespace MsiProxy.Docker;

/// <summary>GET /admin/wiring: the monitor's view (engine connection, host rules, per-client wiring, discovered upstreams). Read-only.</summary>
public static class WiringEndpoints
{
    public static RouteGroupBuilder MapWiringState(this RouteGroupBuilder admin)
    {
        admin.MapGet("/wiring", (IServiceProvider services) => services.GetService<MonitorState>() is { } state
            ? Results.Json(new WiringView(true, state.Connected, state.EngineError, state.LastReconcile, state.DiscoveredUpstreams,
                state.HostInterception, state.Clients), WiringJson.Default.WiringView)
            : Results.Json(new WiringOff(false), WiringJson.Default.WiringOff));
        return admin;
    }

    /// <param name="Upstreams">The msiserviceclient containers the monitor found.</param>
    /// <param name="HostRules">The host-level interception rules, when the monitor installs them.</param>
    internal sealed record WiringView(bool Enabled, bool Connected, string? EngineError, DateTimeOffset? LastReconcile,
        IReadOnlyList<string> Upstreams, HostInterceptionState? HostRules, IReadOnlyList<ClientWiringState> Clients);

    /// <summary>No container monitor runs in this process.</summary>
    internal sealed record WiringOff(bool Enabled);
}

/// <summary>The wiring view's JSON, generated at build time.</summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(WiringEndpoints.WiringView))]
[JsonSerializable(typeof(WiringEndpoints.WiringOff))]
internal sealed partial class WiringJson : JsonSerializerContext;
