using OpenTelemetry.Exporter;

namespace MsiProxy.Management;

/// <summary>What the management listener serves: liveness, readiness, Prometheus metrics and the admin API.</summary>
internal static class ManagementEndpoints
{
    public static IEndpointRouteBuilder MapManagementEndpoints(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapGet("/healthz", () => Results.Ok(new { status = "Healthy" }));
        endpoints.MapGet("/readyz", ReadyAsync);
        endpoints.MapPrometheusScrapingEndpoint("/metrics");
        endpoints.MapAdminApi();
        return endpoints;
    }

    private static async Task<IResult> ReadyAsync(IEnumerable<IReadinessCheck> checks, CancellationToken cancellationToken)
    {
        var results = new List<ReadinessResult>();
        foreach (var check in checks)
        {
            results.Add(await check.CheckAsync(cancellationToken));
        }

        var ready = results.TrueForAll(r => r.Ready);
        return Results.Json(new { status = ready ? "Ready" : "NotReady", checks = results },
            statusCode: ready ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable);
    }
}
