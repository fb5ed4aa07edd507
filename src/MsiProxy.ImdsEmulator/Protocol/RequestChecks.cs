using Microsoft.AspNetCore.Http;

namespace MsiProxy.ImdsEmulator.Protocol;

/// <summary>The two header rules IMDS applies to every request.</summary>
internal static class RequestChecks
{
    /// <summary>Exactly one Metadata header whose value is "true" in lower case (documented as case-sensitive).</summary>
    public static bool HasMetadataHeader(HttpRequest request)
    {
        var values = request.Headers["Metadata"];
        return values.Count == 1 && string.Equals(values[0], "true", StringComparison.Ordinal);
    }

    public static bool HasForwardedFor(HttpRequest request) => request.Headers.ContainsKey("X-Forwarded-For");
}
