using System.Text;
using MsiProxy.Clients;

namespace MsiProxy.Requests;

/// <summary>A validated token request: what IMDS would accept, with values decoded.</summary>
public sealed record TokenRequest(string ApiVersion, string Resource, IdentitySelector? Identity, bool BypassCache, string? Authority)
{
    private static readonly string[] KnownParameters =
        ["api-version", "resource", "client_id", "object_id", "msi_res_id", "mi_res_id", "bypass_cache", "authority"];

    public static bool TryParse(QueryParameters query, out TokenRequest request, out string error)
    {
        request = null!;
        foreach (var (name, _) in query.Pairs)
        {
            if (!KnownParameters.Contains(name, StringComparer.OrdinalIgnoreCase))
            {
                error = $"Unsupported query parameter '{name}'";
                return false;
            }
        }

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

        IdentitySelector? identity = null;
        var selectors = 0;
        foreach (var (name, kind) in Selectors)
        {
            if (query[name] is { } value)
            {
                selectors++;
                if (value.Length == 0)
                {
                    error = $"Query variable '{name}' is empty";
                    return false;
                }

                identity = IdentitySelector.Create(kind, value);
            }
        }

        if (selectors > 1)
        {
            error = "Only one of client_id, object_id and msi_res_id may be specified";
            return false;
        }

        var bypass = query["bypass_cache"];
        if (bypass is not null && bypass != "true")
        {
            error = "Query variable 'bypass_cache' must be 'true' when present";
            return false;
        }

        request = new TokenRequest(apiVersion, resource, identity, bypass is not null, query["authority"]);
        error = "";
        return true;
    }

    private static readonly (string Name, SelectorKind Kind)[] Selectors =
    [
        ("client_id", SelectorKind.ClientId), ("object_id", SelectorKind.ObjectId),
        ("msi_res_id", SelectorKind.ResourceId), ("mi_res_id", SelectorKind.ResourceId),
    ];

    /// <summary>The path and query sent upstream for <paramref name="identity"/> (the identity after binding).</summary>
    public string ToUpstreamPathAndQuery(IdentitySelector identity, bool bypassCache)
    {
        var builder = new StringBuilder(ImdsPaths.Token, 256)
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

        if (bypassCache)
        {
            builder.Append("&bypass_cache=true");
        }

        return builder.ToString();
    }
}
