using CsCheck;
using MsiProxy.Clients;
using MsiProxy.Requests;
using Xunit.Abstractions;

namespace MsiProxy.Tests.Requests;

/// <summary>
/// The canonical path and the query parser as pure functions, over many generated inputs: the attacker's grammar
/// (<see cref="AttackTargets"/>), random strings over the characters that matter, and arbitrary UTF-16. An accepted
/// path is canonical (IMDS's alphabet, a path of the table), a fixed point of the matcher, decoded exactly once, and
/// what .NET's <see cref="Uri"/> would send for it; a parsed query rebuilds into a target that parses back to the same
/// values. Nothing throws. The end-to-end version of these properties is <see cref="BoundaryPropertyTests"/>.
/// </summary>
public sealed class CanonicalPathPropertyTests(ITestOutputHelper output)
{
    private const int Samples = 100_000;

    private static readonly Gen<string> Paths = Gen.Frequency(
        (6, AttackTargets.Path),
        (2, Gen.String[Gen.Char["/metadtinscoupv.%2eEfF5cC\\;0x"], 0, 40]),
        (1, Gen.String[Gen.Char["/%.:0123456789abcdefABCDEF"], 0, 40].Select(s => "/metadata/instance/" + s)),
        (1, Gen.String));

    [Fact]
    public void An_accepted_path_is_canonical_a_fixed_point_and_what_dotnet_sends()
    {
        var accepted = 0;
        Paths.Sample(raw =>
        {
            if (!CanonicalPath.TryMatch(raw, out var endpoint, out var path))
            {
                return;
            }

            Interlocked.Increment(ref accepted);
            AssertCanonical(raw, endpoint, path);
            Assert.True(CanonicalPath.TryMatch(path, out var again, out var pathAgain) && again == endpoint && pathAgain == path,
                $"{raw} → {path}, which matches {(again is null ? "nothing" : again.Name + " as " + pathAgain)}");
            Assert.True(CanonicalPath.TryMatch(path + "/", out again, out pathAgain) && again == endpoint && pathAgain == path,
                $"{raw} → {path}; with a trailing slash it does not");
            Assert.Equal(path, new Uri("http://upstream" + path, UriKind.Absolute).AbsolutePath);
        }, iter: Samples, writeLine: output.WriteLine);

        output.WriteLine($"{accepted} of {Samples} paths accepted");
        Assert.True(accepted > Samples / 20, $"only {accepted} of {Samples} generated paths were accepted: the generator proves little");
    }

    /// <summary>
    /// Decoded exactly once: percent-encoding one character of an accepted path once changes nothing; encoding it twice
    /// (the '%' itself encoded) leaves a '%' after the one decoding, and the path is refused.
    /// </summary>
    [Fact]
    public void A_path_is_decoded_exactly_once()
    {
        var checkedPaths = 0;
        Gen.Select(Paths, Gen.Int.NonNegative).Sample((raw, pick) =>
        {
            if (!CanonicalPath.TryMatch(raw, out var endpoint, out var path))
            {
                return;
            }

            Interlocked.Increment(ref checkedPaths);
            var letters = Enumerable.Range(1, path.Length - 1).Where(i => path[i] != '/').ToArray();
            var at = letters[pick % letters.Length];
            var once = path[..at] + $"%{(int)path[at]:X2}" + path[(at + 1)..];
            var twice = path[..at] + $"%25{(int)path[at]:X2}" + path[(at + 1)..];

            Assert.True(CanonicalPath.TryMatch(once, out var onceEndpoint, out var oncePath) && onceEndpoint == endpoint && oncePath == path,
                $"{once} (one encoding of {path}) → {(onceEndpoint is null ? "refused" : oncePath)}");
            Assert.False(CanonicalPath.TryMatch(twice, out _, out var twicePath), $"{twice} (two encodings of {path}) → {twicePath}");
        }, iter: Samples, writeLine: output.WriteLine);

        Assert.True(checkedPaths > Samples / 20, $"only {checkedPaths} of {Samples} generated paths were accepted");
    }

    [Fact]
    public void A_parsed_query_rebuilds_into_a_target_that_parses_back_to_the_same_values()
    {
        var tokens = 0;
        var queries = Gen.Frequency(
            (6, AttackTargets.Query.Select(q => q.TrimStart('?'))),
            (2, Gen.String[Gen.Char["a_=&%2+6dD3Cc0;x"], 0, 40]),
            (1, Gen.String));
        queries.Sample(raw =>
        {
            if (!QueryParameters.TryParse(raw, out var query, out var error))
            {
                Assert.False(string.IsNullOrEmpty(error), $"{raw}: refused without a reason");
                return;
            }

            var names = query.Pairs.Select(p => p.Key).ToList();
            Assert.DoesNotContain("", names);
            Assert.Equal(names.Count, names.Distinct(StringComparer.OrdinalIgnoreCase).Count());

            // What a forwarded request sends: each name and value escaped, joined — it must read back as it was checked.
            var rebuilt = string.Join('&', query.Pairs.Select(p => Uri.EscapeDataString(p.Key) + "=" + Uri.EscapeDataString(p.Value)));
            Assert.True(QueryParameters.TryParse(rebuilt, out var reread, out _), $"{raw} → {rebuilt}, which does not parse");
            Assert.Equal(query.Pairs, reread.Pairs);
            Assert.Equal("/metadata/instance?" + rebuilt, new Uri("http://upstream/metadata/instance?" + rebuilt).PathAndQuery);

            if (TokenRequest.TryParse(query, out var token, out _))
            {
                Interlocked.Increment(ref tokens);
                AssertTokenTarget(raw, query, token);
            }
        }, iter: Samples, writeLine: output.WriteLine);

        Assert.True(tokens > Samples / 20, $"only {tokens} of {Samples} generated queries were valid token requests");
    }

    /// <summary>The token request rebuilt for the identity it names (or the client's own): one selector, the same values.</summary>
    private static void AssertTokenTarget(string raw, QueryParameters query, TokenRequest token)
    {
        var selectors = new[] { "client_id", "object_id", "msi_res_id", "mi_res_id" }.Count(name => query[name] is not null);
        Assert.True(selectors <= 1, $"{raw}: {selectors} selectors accepted");
        var identity = token.Identity ?? IdentitySelector.Create(SelectorKind.ClientId, BoundaryFixture.A.ClientId);
        var target = token.UpstreamTarget(identity, token.BypassCache);
        Assert.Equal(target, new Uri("http://upstream" + target).PathAndQuery);
        Assert.StartsWith(ImdsEndpoints.Token.Path + "?", target, StringComparison.Ordinal);
        Assert.True(QueryParameters.TryParse(target.AsSpan(target.IndexOf('?', StringComparison.Ordinal) + 1), out var upstream, out _),
            $"{raw} → {target}, which does not parse");
        Assert.Equal(token.ApiVersion, upstream["api-version"]);
        Assert.Equal(token.Resource, upstream["resource"]);
        Assert.Equal(identity.Value, upstream[identity.QueryParameter!]);
        Assert.Single(upstream.Pairs, p => p.Key is "client_id" or "object_id" or "msi_res_id" or "mi_res_id");
    }

    /// <summary>
    /// What the gate may let through: a path of the endpoint table, or <c>/metadata/instance/</c> followed by segments of
    /// [A-Za-z0-9_-]; nothing percent-encoded, no dot, backslash, control character or empty segment; and the endpoint is
    /// the one the path names.
    /// </summary>
    internal static void AssertCanonical(string raw, ImdsEndpoint endpoint, string path)
    {
        Assert.True(IsImdsAlphabet(path), $"{raw} → {path}: not IMDS's alphabet");
        if (endpoint == ImdsEndpoints.Instance && path != endpoint.Path)
        {
            Assert.True(path.StartsWith(ImdsEndpoints.Instance.Path + "/", StringComparison.Ordinal), $"{raw} → {path} as {endpoint}");
            Assert.False(ImdsPaths.IsAtOrBelow(path, ImdsEndpoints.UserData.Path), $"{raw} → {path}: user data through the instance endpoint");
        }
        else
        {
            Assert.True(ImdsEndpoints.All.Contains(endpoint) && path == endpoint.Path, $"{raw} → {path} as {endpoint}");
        }
    }

    private static bool IsImdsAlphabet(string path)
    {
        if (path.Length < 2 || path[0] != '/' || path[^1] == '/' || path.Contains("//", StringComparison.Ordinal))
        {
            return false;
        }

        return path.All(c => char.IsAsciiLetterOrDigit(c) || c is '/' or '-' or '_');
    }

    [Fact]
    public void The_properties_can_tell_a_wrong_canonical_path()
    {
        // The checks above must reject what a broken normaliser would produce; otherwise they prove nothing.
        Assert.ThrowsAny<Exception>(() => AssertCanonical("x", ImdsEndpoints.Instance, "/metadata/instance/.."));
        Assert.ThrowsAny<Exception>(() => AssertCanonical("x", ImdsEndpoints.Instance, "/metadata/instance/%2e%2e"));
        Assert.ThrowsAny<Exception>(() => AssertCanonical("x", ImdsEndpoints.Instance, "/metadata/instance/a\\b"));
        Assert.ThrowsAny<Exception>(() => AssertCanonical("x", ImdsEndpoints.Instance, "/metadata/instance//a"));
        Assert.ThrowsAny<Exception>(() => AssertCanonical("x", ImdsEndpoints.Instance, "/metadata/instance/compute/userData/x"));
        Assert.ThrowsAny<Exception>(() => AssertCanonical("x", ImdsEndpoints.Versions, "/metadata/versions/x"));
        Assert.ThrowsAny<Exception>(() => AssertCanonical("x", ImdsEndpoints.Token, "/metadata/identity/oauth2/token/"));
        Assert.ThrowsAny<Exception>(() => AssertCanonical("x", ImdsEndpoints.Instance, "/metadata/instance/a\u0000"));
        AssertCanonical("x", ImdsEndpoints.Instance, "/metadata/instance/compute/vmId");
        AssertCanonical("x", ImdsEndpoints.Token, ImdsEndpoints.Token.Path);
    }
}
