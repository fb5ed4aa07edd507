using Microsoft.AspNetCore.Http;
using MsiProxy.ImdsEmulator.Protocol;

namespace MsiProxy.ImdsEmulator.Tokens;

/// <summary>GET /metadata/identity/info?api-version=…: the tenant of the system-assigned identity.</summary>
internal sealed class IdentityInfoEndpoint(EmulatorState state, ImdsResponseHeaders headers)
{
    public Task HandleAsync(HttpContext context, ImdsQuery? query, string? queryError)
    {
        if (!RequestChecks.HasMetadataHeader(context.Request))
        {
            return ImdsResponses.WriteAsync(context, headers, 400, ImdsResponses.MetadataHeaderMissing);
        }

        if (state.Options.RejectForwardedFor && RequestChecks.HasForwardedFor(context.Request))
        {
            return BadRequest(context, "Requests with an X-Forwarded-For header are not allowed");
        }

        if (query is null)
        {
            return BadRequest(context, queryError ?? "Malformed query string");
        }

        var apiVersion = query.Get("api-version");
        if (string.IsNullOrEmpty(apiVersion))
        {
            return BadRequest(context, "Required query variable 'api-version' is missing");
        }

        if (!ApiVersions.SupportsIdentity(apiVersion))
        {
            return BadRequest(context, $"Invalid api-version '{apiVersion}'");
        }

        return ImdsResponses.WriteAsync(context, headers, 200, ImdsResponses.Json(w => w.WriteString("tenantId", state.Options.TenantId)));
    }

    private Task BadRequest(HttpContext context, string description) =>
        ImdsResponses.WriteAsync(context, headers, 400, ImdsResponses.IdentityError("invalid_request", description));
}
