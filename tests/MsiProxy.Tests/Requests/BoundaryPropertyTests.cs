using System.Collections.Concurrent;
using System.Diagnostics;
using CsCheck;
using Microsoft.AspNetCore.WebUtilities;
using MsiProxy.Caching;
using MsiProxy.ImdsEmulator;
using MsiProxy.Requests;
using MsiProxy.Testing.Net;
using Xunit.Abstractions;
using static MsiProxy.Tests.Requests.BoundaryFixture;

namespace MsiProxy.Tests.Requests;

/// <summary>
/// The identity boundary as a property, end to end: generated attack targets (<see cref="AttackTargets"/>) sent byte for
/// byte by the client at 127.0.0.2, bound to identity A only, to a real proxy in front of the real emulator (which also
/// has B and a system-assigned identity). For every target:
/// (a) either the proxy refused it and nothing reached the emulator, or exactly one request did, and its raw path is a
///     path of the endpoint table with nothing percent-encoded, equal to what <see cref="CanonicalPath.TryMatch"/> made of
///     the generated path — the path the gate checked — and its query carries the checked values;
/// (b) no token request for B or for the system-assigned identity reaches the emulator by any route: every request the
///     emulator reads as an identity request is a token request that selects A by client_id, read with ASP.NET's
///     query decoder (a different reader from the proxy's);
/// (c) the answer comes within a bound and is never a 5xx.
/// CsCheck prints the seed of a failing run (and shrinks the target); rerun with it to reproduce.
/// </summary>
public sealed class BoundaryPropertyTests(BoundaryFixture boundary, ITestOutputHelper output) : IClassFixture<BoundaryFixture>
{
    private const int Samples = 500;
    private static readonly TimeSpan PerRequestBound = TimeSpan.FromSeconds(10);

    private static readonly string[] SelectorNames = ["client_id", "object_id", "msi_res_id", "mi_res_id", "msi-res-id", "principal_id", "clientid"];

    [Fact]
    public async Task No_target_reaches_another_identity_or_a_path_the_gate_did_not_check()
    {
        var counts = new Counts();
        var clock = Stopwatch.StartNew();
        await AttackTargets.Target.SampleAsync(target => CheckAsync(target, counts), iter: Samples, threads: 1, writeLine: output.WriteLine);
        output.WriteLine($"{Samples} targets in {clock.Elapsed.TotalSeconds:F1} s: {counts.Forwarded} reached the emulator " +
            $"({counts.Tokens} token requests), {counts.Refused} refused");
        output.WriteLine("answers: " + string.Join(", ", counts.Statuses.OrderBy(s => s.Key).Select(s => $"{s.Value} × {s.Key}")));

        // A property over targets that were all refused (or all accepted) would prove little.
        // Typical shares: 15 % reach the emulator, 5 % as token requests; the bounds are well below, so they do not flake.
        Assert.True(counts.Forwarded >= Samples / 15, $"only {counts.Forwarded} of {Samples} targets reached the emulator");
        Assert.True(counts.Tokens >= Samples / 50, $"only {counts.Tokens} of {Samples} targets were served token requests");
        Assert.True(counts.Refused >= Samples / 4, $"only {counts.Refused} of {Samples} targets were refused");
    }

    private sealed class Counts
    {
        public int Forwarded;
        public int Tokens;
        public int Refused;
        public readonly ConcurrentDictionary<int, int> Statuses = new();
    }

    private async Task CheckAsync(string target, Counts counts)
    {
        var requestId = Guid.NewGuid().ToString();
        boundary.Proxy.Get<TokenCache>().RemoveWhere(_ => true, "test"); // an accepted token request goes upstream, to be seen there
        var before = boundary.Emulator.State.Requests.Max(r => (long?)r.Sequence) ?? 0;

        using var bound = new CancellationTokenSource(PerRequestBound);
        RawHttpResponse response;
        try
        {
            response = await RawHttp.GetAsync(boundary.Proxy.ClientAddress, target, [("Metadata", "true"), ("x-ms-client-request-id", requestId)],
                from: Caller, ct: bound.Token);
        }
        catch (OperationCanceledException) when (bound.IsCancellationRequested)
        {
            throw new TimeoutException($"{target}: no answer within {PerRequestBound.TotalSeconds} s");
        }

        counts.Statuses.AddOrUpdate(response.Status, 1, (_, n) => n + 1);
        // (c) Malformed or not, a client request never gets a 5xx here: the emulator has no faults and is well within its limits.
        Assert.True(response.Status is >= 200 and < 500, $"{target} → {response.Status} {response.BodyText}");

        var upstream = boundary.Emulator.State.Requests.Where(r => r.Sequence > before && !IsHealthProbe(r)).OrderBy(r => r.Sequence).ToList();
        foreach (var received in upstream)
        {
            AssertOnlyIdentityA(target, received); // (b), for anything at all that reached the emulator
        }

        // (a)
        var rawPath = target.Split('?', 2)[0];
        var rawQuery = target.Contains('?', StringComparison.Ordinal) ? target.Split('?', 2)[1] : "";
        if (upstream.Count == 0)
        {
            // Nothing is cached (shared answers are off, the token cache was emptied): an answer without an upstream request is a refusal.
            Assert.True(response.Status is >= 400 and < 500, $"{target} → {response.Status} without an upstream request");
            Interlocked.Increment(ref counts.Refused);
            return;
        }

        var forwarded = Assert.Single(upstream);
        Interlocked.Increment(ref counts.Forwarded);
        Assert.True(CanonicalPath.TryMatch(rawPath, out var endpoint, out var checkedPath),
            $"{target} reached the emulator as {forwarded.RawTarget}, but the gate's matcher refuses its path");
        var sentPath = forwarded.RawTarget.Split('?', 2)[0];
        Assert.True(sentPath == checkedPath, $"{target}: the gate checked {checkedPath}, the emulator received {forwarded.RawTarget}");
        CanonicalPathPropertyTests.AssertCanonical(target, endpoint, sentPath);

        Assert.True(QueryParameters.TryParse(rawQuery, out var asked, out _), $"{target}: a query the gate cannot parse was forwarded");
        var sentQuery = forwarded.RawTarget.Contains('?', StringComparison.Ordinal) ? forwarded.RawTarget.Split('?', 2)[1] : "";
        Assert.True(QueryParameters.TryParse(sentQuery, out var sent, out _), $"{target} → {forwarded.RawTarget}: the upstream query does not parse");
        if (endpoint == ImdsEndpoints.Token)
        {
            Interlocked.Increment(ref counts.Tokens);
            Assert.Equal(asked["api-version"], sent["api-version"]);
            Assert.Equal(asked["resource"], sent["resource"]);
        }
        else
        {
            // A forwarded request's query is the checked one, names in the table's spelling, values as decoded.
            Assert.Equal(asked.Pairs.Select(p => KeyValuePair.Create(endpoint.CanonicalParameter(p.Key), p.Value)),
                sent.Pairs.Select(p => KeyValuePair.Create((string?)p.Key, p.Value)));
        }
    }

    /// <summary>
    /// Whatever the emulator reads as an identity request (below /metadata/identity) must be a token request for A,
    /// selected by client_id — and by nothing else: read with ASP.NET's decoder, selector names compared without case.
    /// </summary>
    private static void AssertOnlyIdentityA(string target, RequestRecord received)
    {
        // The emulator's own reading: Kestrel's decoded path (dot segments already removed), without case.
        var path = received.Path.Length > 1 ? received.Path.TrimEnd('/') : received.Path;
        if (!path.StartsWith("/metadata/identity", StringComparison.OrdinalIgnoreCase))
        {
            return;
        }

        Assert.True(path.Equals(ImdsEndpoints.Token.Path, StringComparison.OrdinalIgnoreCase),
            $"{target} reached the emulator's identity endpoints as {received.RawTarget}");
        var query = QueryHelpers.ParseQuery(received.Query);
        var selectors = query.Where(p => SelectorNames.Contains(p.Key, StringComparer.OrdinalIgnoreCase)).ToList();
        var selector = Assert.Single(selectors);
        Assert.True(selector.Key == "client_id" && selector.Value.Count == 1
            && string.Equals(selector.Value[0], A.ClientId, StringComparison.OrdinalIgnoreCase),
            $"{target} reached the emulator as {received.RawTarget}: not identity A by client_id");
    }

    /// <summary>The proxy's health probe: the probe path with none of the client's headers (every generated request carries a request id).</summary>
    private static bool IsHealthProbe(RequestRecord request) =>
        request.RawTarget == "/metadata/versions" && !request.Headers.Keys.Any(k => k.Equals("x-ms-client-request-id", StringComparison.OrdinalIgnoreCase));
}
