using Microsoft.AspNetCore.Http;
using MsiProxy.ImdsEmulator.Protocol;

namespace MsiProxy.ImdsEmulator.Instance;

/// <summary>GET /metadata/versions: the one unversioned endpoint; still needs Metadata: true.</summary>
internal sealed class VersionsEndpoint(ImdsResponseHeaders headers)
{
    private static readonly string Body = ImdsResponses.Json(w =>
    {
        w.WriteStartArray("apiVersions");
        foreach (var version in ApiVersions.All)
        {
            w.WriteStringValue(version);
        }

        w.WriteEndArray();
    });

    public Task HandleAsync(HttpContext context) => RequestChecks.HasMetadataHeader(context.Request)
        ? ImdsResponses.WriteAsync(context, headers, 200, Body)
        : ImdsResponses.WriteAsync(context, headers, 400, ImdsResponses.InstanceMetadataHeaderMissing);
}
