using Microsoft.AspNetCore.Http;
using MsiProxy.ImdsEmulator.Protocol;

namespace MsiProxy.ImdsEmulator.Tokens;

/// <summary>GET /metadata/identity/info?api-version=…: the tenant of the system-assigned identity.</summary>
internal sealed class IdentityInfoEndpoint(EmulatorState state, ImdsResponseHeaders headers)
{
    public Task HandleAsync(HttpContext context, ImdsQuery? query, string? queryError)
    {
        if (!RequestChecks.PassesIdentityChecks(context.Request, state.Options, query, queryError, requireMetadata: true, out var problem))
        {
            return ImdsResponses.WriteAsync(context, headers, 400, problem);
        }

        return ImdsResponses.WriteAsync(context, headers, 200, ImdsResponses.Json(w => w.WriteString("tenantId", state.Options.TenantId)));
    }
}
