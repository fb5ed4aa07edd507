using MsiProxy.Clients;

namespace MsiProxy.UnitTests.Clients;

/// <summary>The two checks every way of registering a client shares: what a name may contain, and which ranges are "everyone".</summary>
public sealed class ClientInputRulesTests
{
    [Theory]
    [InlineData("0.0.0.0/0")]
    [InlineData("10.1.2.3/0")] // masked to 0.0.0.0/0: the same range however it is spelt
    [InlineData("::/0")]
    [InlineData("fd00::1/0")]
    public void Every_address_of_a_family_is_everything(string text)
    {
        Assert.True(AddressRange.Parse(text).IsEverything);
    }

    [Theory]
    [InlineData("0.0.0.0/1")]
    [InlineData("0.0.0.0")]
    [InlineData("10.0.0.0/8")]
    [InlineData("::/1")]
    [InlineData("::")]
    public void Anything_narrower_is_not(string text)
    {
        Assert.False(AddressRange.Parse(text).IsEverything);
    }

    [Theory]
    [InlineData("orders-api")]
    [InlineData("team-a/api-7d9c6b5f4-x2x7q")]
    [InlineData("Zürich app")]
    public void Ordinary_names_are_accepted(string name)
    {
        Assert.Null(ClientNames.Problem(name));
    }

    [Theory]
    [InlineData("", "is required")]
    [InlineData("   ", "is required")]
    [InlineData("app\nforged log line", "U+000A at position 3")]
    [InlineData("app\r", "U+000D at position 3")]
    [InlineData("\u001b[31mred", "U+001B at position 0")]
    [InlineData("app\u007f", "U+007F")]
    [InlineData("app\u0085", "U+0085")]
    [InlineData("evil\u202Eppa", "U+202E at position 4")] // right-to-left override: reads as another name
    [InlineData("a\u200Bb", "U+200B")] // zero-width space: looks like "ab"
    [InlineData("a\u2028b", "U+2028")] // line separator
    public void Control_and_invisible_characters_are_refused_naming_the_position(string name, string expected)
    {
        Assert.Contains(expected, ClientNames.Problem(name), StringComparison.Ordinal);
    }

    [Fact]
    public void A_name_longer_than_a_DNS_name_is_refused()
    {
        Assert.Null(ClientNames.Problem(new string('a', 253)));
        Assert.Contains("at most 253", ClientNames.Problem(new string('a', 254)), StringComparison.Ordinal);
    }
}
