using CsCheck;
using MsiProxy.Requests;

namespace MsiProxy.UnitTests.Requests;

/// <summary>
/// The query parser on its own: what IMDS documents (unique names compared without case, strict percent-decoding
/// once, '+' a space), and that what it decodes is what an encoder meant — the upstream query is rebuilt from it.
/// </summary>
public sealed class QueryParametersTests
{
    [Theory]
    [InlineData("resource=https%3A%2F%2Fvault.azure.net", "resource", "https://vault.azure.net")]
    [InlineData("resource=a+b", "resource", "a b")]
    [InlineData("resource=a%2Bb", "resource", "a+b")]
    [InlineData("resource=%2541", "resource", "%41")] // decoded once: a double-encoded value stays encoded once
    [InlineData("RESOURCE=x", "resource", "x")]
    [InlineData("flag", "flag", "")]
    [InlineData("flag=", "flag", "")]
    [InlineData("a=1&&b=2", "b", "2")]
    [InlineData("a=x=y", "a", "x=y")]
    public void Decodes_a_value_once(string raw, string name, string expected)
    {
        Assert.True(QueryParameters.TryParse(raw, out var query, out var error), error);
        Assert.Equal(expected, query[name]);
    }

    [Theory]
    [InlineData("resource=a&resource=b", "Duplicate query parameter 'resource'")]
    [InlineData("resource=a&Resource=b", "Duplicate query parameter 'Resource'")]
    [InlineData("resource=a&reso%75rce=b", "Duplicate query parameter 'resource'")] // an encoded name is the same name
    [InlineData("resource=%zz", "The query string has malformed percent-encoding")]
    [InlineData("resource=%4", "The query string has malformed percent-encoding")]
    [InlineData("%=x", "The query string has malformed percent-encoding")]
    [InlineData("=x", "The query string has a parameter without a name")]
    public void Refuses_what_IMDS_refuses_with_a_reason(string raw, string expected)
    {
        Assert.False(QueryParameters.TryParse(raw, out var query, out var error));
        Assert.Equal(expected, error);
        Assert.Same(QueryParameters.Empty, query);
    }

    [Fact]
    public void An_empty_query_has_no_parameters_and_an_absent_one_reads_as_null()
    {
        Assert.True(QueryParameters.TryParse("", out var query, out _));
        Assert.Empty(query.Pairs);
        Assert.Null(query["resource"]);
    }

    [Fact]
    public void Keeps_the_order_and_spelling_of_names_as_sent()
    {
        Assert.True(QueryParameters.TryParse("Resource=r&api-version=2018-02-01&Client_Id=c", out var query, out _));
        Assert.Equal(["Resource", "api-version", "Client_Id"], query.Pairs.Select(p => p.Key));
        Assert.Equal("c", query["client_id"]);
    }

    /// <summary>Any distinct names and any values, encoded as an SDK would, parse back to exactly those pairs.</summary>
    [Fact]
    public void What_an_encoder_sends_is_what_is_read()
    {
        var text = Gen.String[Gen.Char.Where(c => !char.IsSurrogate(c)), 0, 20]; // what UTF-8 can carry
        var pairs = Gen.Select(Gen.String[Gen.Char.AlphaNumeric, 1, 12], text).Array[0, 6]
            .Where(a => a.Select(p => p.Item1.ToUpperInvariant()).Distinct().Count() == a.Length);
        pairs.Sample(sent =>
        {
            var raw = string.Join('&', sent.Select(p => Uri.EscapeDataString(p.Item1) + "=" + Uri.EscapeDataString(p.Item2)));
            Assert.True(QueryParameters.TryParse(raw, out var query, out var error), error);
            Assert.Equal(sent.Select(p => new KeyValuePair<string, string>(p.Item1, p.Item2)), query.Pairs);
        });
    }
}
