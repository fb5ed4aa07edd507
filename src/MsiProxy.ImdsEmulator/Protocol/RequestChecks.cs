using System.Diagnostics.CodeAnalysis;
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

    /// <summary>
    /// The checks every identity endpoint makes first, in IMDS's order: the Metadata header (its exact 88-byte body),
    /// X-Forwarded-For, a well-formed query, a supported api-version. On failure <paramref name="problem"/> is the 400 body.
    /// </summary>
    public static bool PassesIdentityChecks(HttpRequest request, EmulatorOptions options, [NotNullWhen(true)] ImdsQuery? query,
        string? queryError, bool requireMetadata, [NotNullWhen(false)] out string? problem)
    {
        problem = requireMetadata && !HasMetadataHeader(request) ? ImdsResponses.MetadataHeaderMissing
            : options.RejectForwardedFor && HasForwardedFor(request) ? InvalidRequest("Requests with an X-Forwarded-For header are not allowed")
            : query is null ? InvalidRequest(queryError ?? "Malformed query string")
            : query.Get("api-version") is not { Length: > 0 } apiVersion ? InvalidRequest("Required query variable 'api-version' is missing")
            : !ApiVersions.SupportsIdentity(apiVersion) ? InvalidRequest($"Invalid api-version '{apiVersion}'")
            : null;
        return problem is null && query is not null;
    }

    /// <summary>
    /// The checks the metadata categories (instance, attested, load balancer, scheduled events) make first: the Metadata
    /// header (their own wording), X-Forwarded-For, a well-formed query, a known api-version. Null when all pass.
    /// </summary>
    public static string? MetadataCategoryProblem(HttpRequest request, EmulatorOptions options, ImdsQuery? query, bool versionKnown = false) =>
        !HasMetadataHeader(request) ? ImdsResponses.InstanceMetadataHeaderMissing
        : options.RejectForwardedFor && HasForwardedFor(request) ? ImdsResponses.PlainError("Bad request. Requests with an X-Forwarded-For header are not allowed")
        : query is null ? ImdsResponses.PlainError("Bad request. Malformed query string")
        : !versionKnown && !ApiVersions.IsKnown(query.Get("api-version")) ? ApiVersions.InvalidVersionBody()
        : null;

    private static string InvalidRequest(string description) => ImdsResponses.IdentityError("invalid_request", description);
}
