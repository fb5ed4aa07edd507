using MsiProxy.Clients;

namespace MsiProxy.Caching;

/// <summary>
/// What makes two token requests the same: the identity after binding, the decoded resource (SDKs differ in
/// encoding, never in meaning), the api-version family, the authority and the client capabilities (<c>xms_cc</c>: a
/// CAE-capable token is a different token). Resources are compared exactly: IMDS echoes a trailing slash as sent, so
/// <c>https://x</c> and <c>https://x/</c> are different entries.
/// </summary>
internal readonly record struct TokenCacheKey(IdentitySelector Identity, string Resource, string ApiVersionFamily, string? Authority,
    string? ClientCapabilities = null)
{
    /// <summary>Every token api-version since 2018-02-01 returns the same shape; older ones are kept apart.</summary>
    public static string FamilyOf(string apiVersion) =>
        string.CompareOrdinal(apiVersion, "2018-02-01") >= 0 ? "2018-02-01+" : apiVersion;

    public override string ToString() => $"{Identity} {Resource} ({ApiVersionFamily})";
}
