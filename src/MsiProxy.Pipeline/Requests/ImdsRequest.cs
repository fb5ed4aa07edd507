using System.Net;
using MsiProxy.Clients;

namespace MsiProxy.Requests;

/// <summary>
/// A client request the gate let through, as one immutable value: who is calling, which endpoint of the table, the
/// canonical path (what was checked and exactly what is sent upstream), the parsed query and the few headers that may
/// travel on. Nothing downstream reads the raw request again.
/// </summary>
internal sealed record ImdsRequest(
    IPAddress Caller,
    ClientRegistration Client,
    ImdsEndpoint Endpoint,
    string Path,
    QueryParameters Query,
    ForwardedHeaders Headers)
{
    /// <summary>The path and the query rebuilt from the checked values, each escaped: the upstream target of a forwarded request.</summary>
    public string UpstreamTarget()
    {
        if (Query.Pairs.Count == 0)
        {
            return Path;
        }

        var builder = new System.Text.StringBuilder(Path, 128);
        var separator = '?';
        foreach (var (name, value) in Query.Pairs)
        {
            builder.Append(separator).Append(Endpoint.CanonicalParameter(name)).Append('=').Append(Uri.EscapeDataString(value));
            separator = '&';
        }

        return builder.ToString();
    }
}

/// <summary>
/// The client headers that travel upstream — an allow-list, so nothing else a client sends (X-Forwarded-For, X-Real-IP,
/// Via, Upgrade, an X-HTTP-Method-Override…) ever reaches IMDS. <c>Metadata: true</c> is always the proxy's own.
/// </summary>
internal readonly record struct ForwardedHeaders(string? Accept, string? UserAgent, string? ClientRequestId)
{
    public static ForwardedHeaders None => default;

    public static ForwardedHeaders From(IHeaderDictionary headers) => new(
        Single(headers.Accept), Single(headers.UserAgent), Single(headers["x-ms-client-request-id"]));

    private static string? Single(Microsoft.Extensions.Primitives.StringValues values) => values.Count == 0 ? null : values.ToString();
}
