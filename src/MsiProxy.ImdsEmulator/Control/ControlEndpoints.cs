using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace MsiProxy.ImdsEmulator.Control;

/// <summary>
/// JSON control API for a standalone emulator: read the log and counters, script faults, reset.
/// Map it on a listener of its own so IMDS callers cannot reach it.
/// </summary>
public static class ControlEndpoints
{
    internal static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        WriteIndented = false,
    };

    public static IEndpointRouteBuilder MapEmulatorControl(this IEndpointRouteBuilder endpoints, EmulatorState state)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        ArgumentNullException.ThrowIfNull(state);

        endpoints.MapGet("/emulator/requests", () => Results.Json(state.Requests, Json));
        endpoints.MapGet("/emulator/counters", () => Results.Json(state.Counters.Snapshot(), Json));
        endpoints.MapGet("/emulator/tokens", () => Results.Json(state.IssuedTokens, Json));
        endpoints.MapGet("/emulator/faults", () => Results.Json(state.Faults.Pending, Json));
        endpoints.MapPost("/emulator/faults", (Delegate)(async (HttpContext context) => await EnqueueAsync(context, state).ConfigureAwait(false)));
        endpoints.MapDelete("/emulator/faults", () =>
        {
            state.Faults.Clear();
            return Results.NoContent();
        });
        endpoints.MapPost("/emulator/reset", () =>
        {
            state.Reset();
            return Results.NoContent();
        });
        return endpoints;
    }

    /// <summary>Accepts one rule object or an array of rules; all are validated before any is enqueued.</summary>
    private static async Task<IResult> EnqueueAsync(HttpContext context, EmulatorState state)
    {
        IReadOnlyList<FaultRule> rules;
        try
        {
            rules = await FaultFile.ReadAsync(context.Request.Body, context.RequestAborted).ConfigureAwait(false);
        }
        catch (JsonException ex)
        {
            return Results.Json(new { error = "invalid_request", error_description = $"Invalid fault JSON: {ex.Message}" }, Json, statusCode: 400);
        }

        try
        {
            FaultFile.EnqueueAll(state.Faults, rules);
        }
        catch (ArgumentException ex)
        {
            return Results.Json(new { error = "invalid_request", error_description = ex.Message }, Json, statusCode: 400);
        }

        return Results.Json(new { enqueued = rules.Count }, Json, statusCode: 201);
    }
}
