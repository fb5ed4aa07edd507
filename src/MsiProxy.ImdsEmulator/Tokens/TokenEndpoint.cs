using Microsoft.AspNetCore.Http;
using MsiProxy.ImdsEmulator.Protocol;

namespace MsiProxy.ImdsEmulator.Tokens;

/// <summary>GET /metadata/identity/oauth2/token: validates like IMDS, then serves a cached or new token.</summary>
internal sealed class TokenEndpoint(EmulatorState state, ImdsResponseHeaders headers)
{
    private static readonly (string Name, SelectorKind Kind)[] Selectors =
    [
        ("client_id", SelectorKind.ClientId),
        ("object_id", SelectorKind.ObjectId),
        ("msi_res_id", SelectorKind.ResourceId),
        ("mi_res_id", SelectorKind.ResourceId),
    ];

    public Task HandleAsync(HttpContext context, ImdsQuery? query, string? queryError)
    {
        if (!RequestChecks.PassesIdentityChecks(context.Request, state.Options, query, queryError, state.Options.RequireMetadataHeader, out var problem))
        {
            return ImdsResponses.WriteAsync(context, headers, 400, problem);
        }

        var resource = query.Get("resource");
        if (string.IsNullOrEmpty(resource))
        {
            return BadRequest(context, "Required query variable 'resource' is missing");
        }

        var given = Selectors.Where(s => query.Has(s.Name)).ToList();
        if (given.Count > 1)
        {
            return BadRequest(context, "Only one of client_id, object_id and msi_res_id may be specified");
        }

        var bypass = query.Get("bypass_cache");
        if (bypass is not null && bypass != "true")
        {
            return BadRequest(context, "Query variable 'bypass_cache' must be 'true' when specified");
        }

        var selector = given.Count == 0
            ? new IdentitySelector(SelectorKind.None, null)
            : new IdentitySelector(given[0].Kind, query.Get(given[0].Name));
        var identity = state.Identities.Resolve(selector);
        if (identity is null)
        {
            return ImdsResponses.WriteAsync(context, headers, 400, ImdsResponses.IdentityNotFound);
        }

        var (token, minted) = state.Tokens.GetOrMint(identity, resource, bypassCache: bypass is not null);
        if (minted)
        {
            state.RecordIssued(token.AccessToken);
        }

        return ImdsResponses.WriteAsync(context, headers, 200, SuccessBody(token));
    }

    /// <summary>Keys in alphabetical order and every value a string, as in captures of real IMDS answers.</summary>
    private string SuccessBody(IssuedToken token)
    {
        var remaining = Math.Max(0, token.ExpiresOn.ToUnixTimeSeconds() - state.Time.GetUtcNow().ToUnixTimeSeconds());
        var lifetime = (long)token.Lifetime.TotalSeconds;
        return ImdsResponses.Json(w =>
        {
            w.WriteString("access_token", token.AccessToken);
            w.WriteString("client_id", token.ClientId);
            w.WriteString("expires_in", Number(remaining));
            w.WriteString("expires_on", Number(token.ExpiresOn.ToUnixTimeSeconds()));
            w.WriteString("ext_expires_in", Number(Math.Max(0, lifetime - 1)));
            w.WriteString("not_before", Number(token.NotBefore.ToUnixTimeSeconds()));
            w.WriteString("resource", token.Resource);
            w.WriteString("token_type", "Bearer");
        });
    }

    private static string Number(long value) => value.ToString(System.Globalization.CultureInfo.InvariantCulture);

    private Task BadRequest(HttpContext context, string description) =>
        ImdsResponses.WriteAsync(context, headers, 400, ImdsResponses.IdentityError("invalid_request", description));
}
