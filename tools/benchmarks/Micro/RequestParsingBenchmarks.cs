using BenchmarkDotNet.Attributes;
using MsiProxy.Requests;

namespace MsiProxy.Benchmarks.Micro;

/// <summary>What the gate and the token endpoint do to every token request before the cache is consulted.</summary>
public class RequestParsingBenchmarks
{
    // What Azure.Identity sends (resource not encoded) and what the JS SDK sends (encoded, trailing slash on the path).
    private const string DotNetTarget = "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://management.azure.com&client_id=11111111-1111-1111-1111-111111111111";
    private const string NodeTarget = "/metadata/identity/oauth2/token/?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com";

    private readonly QueryParameters _parsed = Parse(DotNetTarget);
    private readonly TokenRequest _request = TokenRequest.TryParse(Parse(DotNetTarget), out var request, out var error) ? request : throw new InvalidOperationException(error);

    [Benchmark(Baseline = true)]
    public string Normalise_path() => CanonicalPath.TryMatch(PathOf(DotNetTarget), out _, out var path) ? path : "";

    [Benchmark]
    public string Normalise_path_trailing_slash() => CanonicalPath.TryMatch(PathOf(NodeTarget), out _, out var path) ? path : "";

    [Benchmark]
    public object Parse_query_plain() => Parse(DotNetTarget);

    [Benchmark]
    public object Parse_query_percent_encoded() => Parse(NodeTarget);

    [Benchmark]
    public object? Validate_token_request() => TokenRequest.TryParse(_parsed, out var request, out _) ? request : null;

    /// <summary>What a cache miss sends upstream; before the lazy fix in TokenEndpoint it was built on every hit too.</summary>
    [Benchmark]
    public string Build_upstream_path_and_query() => _request.UpstreamTarget(_request.Identity!.Value, bypassCache: false);

    private static ReadOnlySpan<char> PathOf(string target) => target.AsSpan(0, target.IndexOf('?', StringComparison.Ordinal));

    private static QueryParameters Parse(string target)
    {
        return QueryParameters.TryParse(target.AsSpan(target.IndexOf('?', StringComparison.Ordinal) + 1), out var query, out var error)
            ? query
            : throw new InvalidOperationException(error);
    }
}
