using System.Text;
using MsiProxy.Clients;

namespace MsiProxy.Requests;

/// <summary>
/// A validated token request, values decoded: what IMDS would accept. The gate has already refused parameters the
/// token endpoint does not take; this adds the rules between them. Selector values keep the client's spelling.
/// </summary>
internal sealed record TokenRequest(string ApiVersion, string Resource, IdentitySelector? Identity, bool BypassCache, string? Authority)
{
    /// <summary><c>xms_cc</c>: the client's capabilities (cp1 = continuous access evaluation); a CAE-capable token is a different token.</summary>
    public string? ClientCapabilities { get; init; }

    /// <summary><c>token_sha256_to_refresh</c>, decoded from hex: the SHA-256 of a token the client holds and knows is revoked.</summary>
    public byte[]? RevokedTokenSha256 { get; init; }

    private static readonly (string Name, SelectorKind Kind)[] Selectors =
    [
        ("client_id", SelectorKind.ClientId), ("object_id", SelectorKind.ObjectId),
        ("msi_res_id", SelectorKind.ResourceId), ("mi_res_id", SelectorKind.ResourceId),
    ];

    /// <summary>The App Service protocol's only api-version (the 2017-09-01 one used another header, <c>secret</c>).</summary>
    public const string AppServiceApiVersion = "2019-08-01";

    /// <summary>The IMDS api-version an App Service request is fetched with: the one every SDK sends, so both protocols share cached tokens.</summary>
    public const string ImdsApiVersionForAppService = "2018-02-01";

    private static readonly (string Name, SelectorKind Kind)[] AppServiceSelectors =
    [
        ("client_id", SelectorKind.ClientId), ("object_id", SelectorKind.ObjectId), ("principal_id", SelectorKind.ObjectId),
        ("mi_res_id", SelectorKind.ResourceId),
    ];

    /// <summary>Reads a token request in <paramref name="dialect"/>'s terms.</summary>
    public static bool TryParse(Dialect dialect, QueryParameters query, out TokenRequest request, out string error) =>
        dialect == Dialect.AppService ? TryParseAppService(query, out request, out error) : TryParse(query, out request, out error);

    /// <summary>
    /// <c>GET /msi/token?api-version=2019-08-01&amp;resource=…[&amp;client_id=|object_id=|principal_id=|mi_res_id=]</c>:
    /// App Service's selectors (<c>principal_id</c> is its other name for the object id), no <c>bypass_cache</c> or
    /// <c>authority</c>, but MSAL's CAE parameters (<c>xms_cc</c>, <c>token_sha256_to_refresh</c>), which it sends to every source.
    /// </summary>
    public static bool TryParseAppService(QueryParameters query, out TokenRequest request, out string error)
    {
        request = null!;
        if (query["api-version"] is not { } apiVersion || apiVersion != AppServiceApiVersion)
        {
            error = $"Query variable 'api-version' must be {AppServiceApiVersion}";
            return false;
        }

        if (query["resource"] is not { Length: > 0 } resource)
        {
            error = "Required query variable 'resource' is missing";
            return false;
        }

        if (!TryReadSelector(query, AppServiceSelectors, out var identity, out error) || !TryReadRevokedToken(query, out var revoked, out error))
        {
            return false;
        }

        request = new TokenRequest(ImdsApiVersionForAppService, resource, identity, BypassCache: false, Authority: null)
        {
            ClientCapabilities = ClientCapabilitiesIn(query),
            RevokedTokenSha256 = revoked,
        };
        return true;
    }

    public static bool TryParse(QueryParameters query, out TokenRequest request, out string error)
    {
        request = null!;
        var apiVersion = query["api-version"];
        if (string.IsNullOrEmpty(apiVersion))
        {
            error = "Required query variable 'api-version' is missing";
            return false;
        }

        var resource = query["resource"];
        if (string.IsNullOrEmpty(resource))
        {
            error = "Required query variable 'resource' is missing";
            return false;
        }

        if (!TryReadSelector(query, Selectors, out var identity, out error))
        {
            return false;
        }

        var bypass = query["bypass_cache"];
        if (bypass is not null && bypass != "true")
        {
            error = "Query variable 'bypass_cache' must be 'true' when present";
            return false;
        }

        if (!TryReadRevokedToken(query, out var revoked, out error))
        {
            return false;
        }

        request = new TokenRequest(apiVersion, resource, identity, bypass is not null, query["authority"])
        {
            ClientCapabilities = ClientCapabilitiesIn(query),
            RevokedTokenSha256 = revoked,
        };
        error = "";
        return true;
    }

    private static string? ClientCapabilitiesIn(QueryParameters query) => query["xms_cc"] is { Length: > 0 } capabilities ? capabilities : null;

    /// <summary><c>token_sha256_to_refresh</c>, if present: 64 hex digits.</summary>
    private static bool TryReadRevokedToken(QueryParameters query, out byte[]? revoked, out string error)
    {
        revoked = null;
        error = "";
        if (query["token_sha256_to_refresh"] is not { } hash)
        {
            return true;
        }

        try
        {
            revoked = hash.Length == 64 ? Convert.FromHexString(hash) : null;
        }
        catch (FormatException)
        {
        }

        if (revoked is null)
        {
            error = "Query variable 'token_sha256_to_refresh' must be a SHA-256 digest in hex";
            return false;
        }

        return true;
    }

    /// <summary>At most one selector, not empty; none means the client's default identity.</summary>
    private static bool TryReadSelector(QueryParameters query, (string Name, SelectorKind Kind)[] selectors, out IdentitySelector? identity,
        out string error)
    {
        identity = null;
        error = "";
        var found = 0;
        foreach (var (name, kind) in selectors)
        {
            if (query[name] is { } value)
            {
                found++;
                if (value.Trim().Length == 0)
                {
                    error = $"Query variable '{name}' is empty";
                    return false;
                }

                identity = IdentitySelector.Create(kind, value);
            }
        }

        if (found > 1)
        {
            error = selectors == Selectors ? "Only one of client_id, object_id and msi_res_id may be specified"
                : "Only one of client_id, object_id, principal_id and mi_res_id may be specified";
            return false;
        }

        return true;
    }

    /// <summary>
    /// The path and query sent upstream for <paramref name="identity"/> (the identity after binding), built from the
    /// checked values, each escaped. <paramref name="bypassCache"/> asks the upstream for a new token too.
    /// </summary>
    public string UpstreamTarget(IdentitySelector identity, bool bypassCache)
    {
        var builder = new StringBuilder(ImdsEndpoints.Token.Path, 256)
            .Append("?api-version=").Append(Uri.EscapeDataString(ApiVersion))
            .Append("&resource=").Append(Uri.EscapeDataString(Resource));
        if (identity.QueryParameter is { } parameter)
        {
            builder.Append('&').Append(parameter).Append('=').Append(Uri.EscapeDataString(identity.Value));
        }

        if (Authority is not null)
        {
            builder.Append("&authority=").Append(Uri.EscapeDataString(Authority));
        }

        if (ClientCapabilities is not null)
        {
            builder.Append("&xms_cc=").Append(Uri.EscapeDataString(ClientCapabilities));
        }

        if (bypassCache)
        {
            builder.Append("&bypass_cache=true");
        }

        if (bypassCache && RevokedTokenSha256 is { } revoked)
        {
            builder.Append("&token_sha256_to_refresh=").Append(Convert.ToHexStringLower(revoked));
        }

        return builder.ToString();
    }
}
