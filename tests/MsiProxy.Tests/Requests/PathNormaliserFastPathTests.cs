using MsiProxy.Requests;

namespace MsiProxy.Tests.Requests;

/// <summary>
/// The allocation-free fast path for already-canonical paths must answer exactly what the general algorithm does,
/// and hand everything unusual to it.
/// </summary>
public sealed class PathNormaliserFastPathTests
{
    [Theory]
    [InlineData("/metadata/identity/oauth2/token", "/metadata/identity/oauth2/token")]
    [InlineData("/metadata/identity/oauth2/token/", "/metadata/identity/oauth2/token")]
    [InlineData("/Metadata/Identity/OAuth2/Token", "/Metadata/Identity/OAuth2/Token")]
    [InlineData("/metadata/instance/compute/vmId", "/metadata/instance/compute/vmId")]
    [InlineData("/", "/")]
    [InlineData("//", "/")]
    [InlineData("/a//b", "/a/b")]
    [InlineData("/a/./b/", "/a/b")]
    [InlineData("/a/b/..", "/a")]
    [InlineData("/a/../b", "/b")]
    [InlineData("/a+b", "/a+b")]
    [InlineData("/a%20b", "/a b")]
    [InlineData("/a b", "/a b")]
    [InlineData("/caf\u00e9", "/caf\u00e9")]
    public void Normalises_to_the_canonical_path(string raw, string expected)
    {
        Assert.True(PathNormaliser.TryNormalise(raw, out var normalised, out var error), error);
        Assert.Equal(expected, normalised);
    }

    [Fact]
    public void The_token_path_is_the_shared_constant_not_a_copy()
    {
        Assert.True(PathNormaliser.TryNormalise("/metadata/identity/oauth2/token/".AsSpan(), out var normalised, out _));
        Assert.Same(ImdsPaths.Token, normalised);
    }

    [Theory]
    [InlineData("/..")]
    [InlineData("/metadata/%2e%2e/%2e%2e")]
    [InlineData("/metadata%2fidentity")]
    [InlineData("/metadata\\identity")]
    [InlineData("/metadata/%zz")]
    [InlineData("/a\u0001b")]
    [InlineData("metadata/identity")]
    public void Refuses_what_it_refused_before(string raw) =>
        Assert.False(PathNormaliser.TryNormalise(raw, out _, out _));
}
