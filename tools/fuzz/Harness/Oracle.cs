using MsiProxy.Clients;
using MsiProxy.Requests;

namespace MsiProxy.Fuzz;

/// <summary>An input for which the parsers broke one of their invariants: a finding, as much as an exception is.</summary>
internal sealed class InvariantViolation(string message) : Exception(message);

/// <summary>
/// What must hold for any request target, whatever its bytes: the parsers refuse by returning false, never by throwing;
/// an accepted path is canonical (IMDS's alphabet, a path of the endpoint table), a fixed point of the matcher,
/// decoded exactly once, read the same by <see cref="Uri"/> (what .NET sends upstream); a parsed query rebuilds into a
/// query that parses back to the same values; a token request's upstream target carries the checked values and one
/// selector. The same invariants as tests/MsiProxy.Tests/Requests/CanonicalPathPropertyTests.cs, without xunit.
/// </summary>
internal static class Oracle
{
    private const string SomeClientId = "00000001-aaaa-4aaa-8aaa-000000000000";
    private static readonly string[] SelectorNames = ["client_id", "object_id", "msi_res_id", "mi_res_id"];

    /// <param name="target">A request target as the gate reads it: path, then an optional '?' and query.</param>
    public static void Check(string target)
    {
        var queryStart = target.IndexOf('?', StringComparison.Ordinal);
        CheckPath(queryStart < 0 ? target : target[..queryStart]);
        CheckQuery(queryStart < 0 ? "" : target[(queryStart + 1)..]);
    }

    private static void CheckPath(string raw)
    {
        if (!CanonicalPath.TryMatch(raw, out var endpoint, out var path))
        {
            return;
        }

        Require(IsImdsAlphabet(path), raw, path, "the canonical path is not in IMDS's alphabet");
        if (endpoint == ImdsEndpoints.Instance && path != endpoint.Path)
        {
            Require(path.StartsWith(ImdsEndpoints.Instance.Path + "/", StringComparison.Ordinal), raw, path, "not below the instance endpoint");
            Require(!ImdsPaths.IsAtOrBelow(path, ImdsEndpoints.UserData.Path), raw, path, "user data through the instance endpoint");
        }
        else
        {
            Require(ImdsEndpoints.All.Contains(endpoint) && path == endpoint.Path, raw, path, $"not the path of endpoint {endpoint}");
        }

        Require(CanonicalPath.TryMatch(path, out var again, out var pathAgain) && again == endpoint && pathAgain == path, raw, path,
            "the canonical path does not match to itself");
        Require(CanonicalPath.TryMatch(path + "/", out again, out pathAgain) && again == endpoint && pathAgain == path, raw, path,
            "the canonical path with a trailing slash does not match to it");
        Require(new Uri("http://upstream" + path, UriKind.Absolute).AbsolutePath == path, raw, path, "System.Uri reads it differently");

        // An independent reading: RFC 3986 unescaping of what was sent gives the same path, up to case.
        var trimmed = raw.Length > 1 && raw[^1] == '/' ? raw[..^1] : raw;
        Require(string.Equals(Uri.UnescapeDataString(trimmed), path, StringComparison.OrdinalIgnoreCase), raw, path,
            "Uri.UnescapeDataString reads the sent path differently");

        // Decoded exactly once: one character encoded once changes nothing, encoded twice is refused.
        var at = 1 + (int)((uint)string.GetHashCode(raw, StringComparison.Ordinal) % (uint)(path.Length - 1));
        if (path[at] != '/')
        {
            var once = path[..at] + $"%{(int)path[at]:X2}" + path[(at + 1)..];
            var twice = path[..at] + $"%25{(int)path[at]:X2}" + path[(at + 1)..];
            Require(CanonicalPath.TryMatch(once, out var onceEndpoint, out var oncePath) && onceEndpoint == endpoint && oncePath == path,
                raw, path, $"{once} (one encoding) does not match the same");
            Require(!CanonicalPath.TryMatch(twice, out _, out _), raw, path, $"{twice} (two encodings) is accepted");
        }
    }

    private static void CheckQuery(string raw)
    {
        if (!QueryParameters.TryParse(raw, out var query, out var error))
        {
            Require(!string.IsNullOrEmpty(error), raw, "", "refused without a reason");
            return;
        }

        var names = query.Pairs.Select(p => p.Key).ToList();
        Require(!names.Contains(""), raw, "", "a parameter without a name");
        Require(names.Distinct(StringComparer.OrdinalIgnoreCase).Count() == names.Count, raw, "", "a duplicate name");

        var rebuilt = string.Join('&', query.Pairs.Select(p => Uri.EscapeDataString(p.Key) + "=" + Uri.EscapeDataString(p.Value)));
        Require(QueryParameters.TryParse(rebuilt, out var reread, out _) && reread.Pairs.SequenceEqual(query.Pairs), raw, rebuilt,
            "the rebuilt query does not parse back to the same values");
        Require(rebuilt.Length == 0 || new Uri("http://upstream/metadata/instance?" + rebuilt).Query == "?" + rebuilt, raw, rebuilt,
            "System.Uri reads the rebuilt query differently");

        if (!TokenRequest.TryParse(query, out var token, out _))
        {
            return;
        }

        Require(SelectorNames.Count(name => query[name] is not null) <= 1, raw, "", "more than one selector accepted");
        var identity = token.Identity ?? IdentitySelector.Create(SelectorKind.ClientId, SomeClientId);
        var target = token.UpstreamTarget(identity, token.BypassCache);
        Require(new Uri("http://upstream" + target).PathAndQuery == target, raw, target, "System.Uri reads the token target differently");
        Require(target.StartsWith(ImdsEndpoints.Token.Path + "?", StringComparison.Ordinal), raw, target, "not the token endpoint");
        Require(QueryParameters.TryParse(target.AsSpan(target.IndexOf('?', StringComparison.Ordinal) + 1), out var upstream, out _), raw, target,
            "the token target's query does not parse");
        Require(upstream["api-version"] == token.ApiVersion && upstream["resource"] == token.Resource, raw, target,
            "api-version or resource changed on the way upstream");
        Require(upstream.Pairs.Count(p => SelectorNames.Contains(p.Key)) == 1 && upstream[identity.QueryParameter!] == identity.Value, raw, target,
            "the upstream selector is not the one identity");
    }

    private static bool IsImdsAlphabet(string path) =>
        path.Length > 1 && path[0] == '/' && path[^1] != '/' && !path.Contains("//", StringComparison.Ordinal)
        && path.All(c => char.IsAsciiLetterOrDigit(c) || c is '/' or '-' or '_');

    private static void Require(bool holds, string input, string output, string what)
    {
        if (!holds)
        {
            throw new InvariantViolation($"{what}: input {Escape(input)} → {Escape(output)}");
        }
    }

    /// <summary>Inputs are arbitrary bytes: show control and non-ASCII characters as escapes.</summary>
    private static string Escape(string text) =>
        string.Concat(text.Select(c => c is >= ' ' and <= '~' ? c.ToString() : $"\\u{(int)c:x4}"));
}
