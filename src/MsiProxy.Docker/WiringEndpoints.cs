namespace MsiProxy.Docker;

/// <summary>GET /admin/wiring: the monitor's view (engine connection, host rules, per-client wiring, discovered upstreams). Read-only.</summary>
public static class WiringEndpoints
{
    public static RouteGroupBuilder MapWiringState(this RouteGroupBuilder admin)
    {
        admin.MapGet("/wiring", (IServiceProvider services) => services.GetService<MonitorState>() is { } state
            ? Results.Ok(new
            {
                enabled = true,
                connected = state.Connected,
                engineError = state.EngineError,
                lastReconcile = state.LastReconcile,
                upstreams = state.DiscoveredUpstreams,
                hostRules = state.HostInterception,
                clients = state.Clients,
            })
            : Results.Ok(new { enabled = false }));
        return admin;
    }
}
