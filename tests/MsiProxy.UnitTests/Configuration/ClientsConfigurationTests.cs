using System.Globalization;
using System.Text;
using System.Text.Json;
using CsCheck;
using Microsoft.Extensions.Configuration;
using MsiProxy.Configuration;

namespace MsiProxy.UnitTests.Configuration;

/// <summary>
/// <see cref="ClientsConfiguration"/> must give exactly what the configuration binder gives for <c>MsiProxy:Clients</c>,
/// and give it in one pass over the keys (the binder's pass per element made 10,000 clients take ~23 s).
/// </summary>
public sealed class ClientsConfigurationTests
{
    private const string Path = "MsiProxy:Clients";

    private static readonly string[] Names = ["Name", "Address", "Proof", "IdentityHeaderSha256", "name", "ADDRESS"];
    private static readonly string[] ListNames = ["Identities", "Prefetch", "Endpoints", "identities"];

    // One key of a client: a scalar, a list element (sometimes past a gap), or something the reader must not guess about.
    private static readonly Gen<(string Key, string? Value)> Keys = Gen.OneOf(
        Gen.Select(Gen.OneOf(Names), Gen.String.AlphaNumeric, (k, v) => (k, (string?)v)),
        Gen.Select(Gen.OneOf(ListNames), Gen.Int[0, 3], Gen.String.AlphaNumeric, (k, i, v) => ($"{k}:{i}", (string?)v)),
        Gen.Select(Gen.OneOf(ListNames), Gen.OneOf((string?)null, "", "x"), (k, v) => (k, v)),
        Gen.Select(Gen.OneOf(ListNames), Gen.Int[0, 3], (k, i) => ($"{k}:{i}", (string?)null)),
        Gen.Select(Gen.OneOf("Unknown", "Identities:0:Nested", "Prefetch:x", ""), Gen.String.AlphaNumeric, (k, v) => (k, (string?)v)));

    // A layer (provider) of clients: element key (index or not) → its keys.
    private static readonly Gen<List<(string Element, (string Key, string? Value)[] Keys)>> Layer =
        Gen.Select(Gen.OneOf(Gen.Int[0, 12].Select(i => i.ToString(CultureInfo.InvariantCulture)), Gen.OneOf("a", "B", "01", "+1", "00")), Keys.Array[0, 6],
            (e, k) => (e, k)).List[0, 6];

    // A plain layer: the keys a client has, lists without gaps (an empty JSON array is the list's key with "").
    private static readonly Gen<List<(string Element, (string Key, string? Value)[] Keys)>> PlainLayer =
        Gen.Select(Gen.Int[0, 12], Gen.OneOf(Names).Array[0, 4], Gen.OneOf(ListNames), Gen.Int[-1, 3], Gen.String.AlphaNumeric,
            (element, scalars, list, length, value) => (element.ToString(CultureInfo.InvariantCulture),
                scalars.Select(k => (k, (string?)value))
                    .Concat(length < 0 ? [(list, (string?)"")] : Enumerable.Range(0, length).Select(i => ($"{list}:{i}", (string?)(value + i))))
                    .ToArray())).List[0, 6];

    [Fact]
    public void Any_layering_of_providers_reads_exactly_what_the_binder_reads()
    {
        Gen.Select(Layer, Layer).Sample((first, second) =>
        {
            var (expected, actual) = BothWays(Layered(first, second));
            Assert.Equal(expected, actual);
        }, iter: 2000);
    }

    [Fact]
    public void Plain_layers_are_read_in_one_pass_and_exactly_as_the_binder_reads_them()
    {
        Gen.Select(PlainLayer, PlainLayer).Sample((first, second) =>
        {
            var configuration = Layered(first, second);
            Assert.NotNull(ClientsConfiguration.Read(configuration, Path));
            var (expected, actual) = BothWays(configuration);
            Assert.Equal(expected, actual);
        }, iter: 2000);
    }

    private static IConfigurationRoot Layered(List<(string Element, (string Key, string? Value)[] Keys)> first,
        List<(string Element, (string Key, string? Value)[] Keys)> second) => new ConfigurationBuilder()
        .AddInMemoryCollection(Flatten(first))
        .AddInMemoryCollection(Flatten(second))
        .AddInMemoryCollection([KeyValuePair.Create("MsiProxy:HoldTimeout", (string?)"00:00:03")])
        .Build();

    /// <summary>
    /// "01" in one provider and "1" in another are two clients; which comes last decides who owns a shared address,
    /// so the one-pass reader leaves indexes that are not canonical to the binder.
    /// </summary>
    [Theory]
    [InlineData("01", "1")]
    [InlineData("1", "01")]
    [InlineData("+1", "1")]
    [InlineData("00", "0")]
    public void Indexes_that_are_not_canonical_are_ordered_as_the_binder_orders_them(string first, string second)
    {
        var configuration = new ConfigurationBuilder()
            .AddInMemoryCollection([KeyValuePair.Create($"{Path}:{first}:Name", (string?)"a"), KeyValuePair.Create($"{Path}:{first}:Address", (string?)"10.0.0.5")])
            .AddInMemoryCollection([KeyValuePair.Create($"{Path}:{second}:Name", (string?)"b"), KeyValuePair.Create($"{Path}:{second}:Address", (string?)"10.0.0.5")])
            .Build();

        Assert.Null(ClientsConfiguration.Read(configuration, Path));
        var (binder, onePass) = BothWays(configuration);
        Assert.Equal(binder, onePass);
    }

    [Fact]
    public void Plain_json_and_environment_style_clients_are_read_in_one_pass_as_the_binder_reads_them()
    {
        const string json = """
            { "MsiProxy": { "Clients": [
              { "Name": "web", "Address": "10.0.0.5", "Identities": ["client_id=11111111-1111-1111-1111-111111111111"], "Prefetch": [] },
              { "Name": "batch", "Address": "10.0.1.0/24", "Proof": "secret", "IdentityHeaderSha256": "ab", "Endpoints": ["userdata"] } ] } }
            """;
        var configuration = new ConfigurationBuilder()
            .AddJsonStream(new MemoryStream(Encoding.UTF8.GetBytes(json)))
            .AddInMemoryCollection(new Dictionary<string, string?>
            {
                // As MsiProxy__Clients__1__Address etc. arrive from the environment (the chart's msiserviceclient mode).
                ["MsiProxy:Clients:1:Address"] = "10.0.2.0/24",
                ["MsiProxy:Clients:2:Name"] = "from-env",
                ["MsiProxy:Clients:2:Address"] = "10.0.3.7",
                ["MsiProxy:Clients:2:Identities:0"] = "*",
            })
            .Build();

        var read = ClientsConfiguration.Read(configuration, Path);

        Assert.NotNull(read);
        Assert.Equal(["web", "batch", "from-env"], read.Select(c => c.Name));
        Assert.Equal("10.0.2.0/24", read[1].Address);
        Assert.Equal(["*"], read[2].Identities);
        var (expected, actual) = BothWays(configuration);
        Assert.Equal(expected, actual);
    }

    [Fact]
    public void A_chained_configuration_is_left_to_the_binder_and_read_the_same()
    {
        var inner = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["MsiProxy:Clients:0:Name"] = "web",
            ["MsiProxy:Clients:0:Address"] = "10.0.0.5",
        }).Build();
        var configuration = new ConfigurationBuilder().AddConfiguration(inner).Build();

        Assert.Null(ClientsConfiguration.Read(configuration, Path));
        var (expected, actual) = BothWays(configuration);
        Assert.Equal(expected, actual);
        Assert.Contains("web", actual, StringComparison.Ordinal);
    }

    [Fact]
    public void Ten_thousand_clients_cost_one_child_key_pass_per_provider()
    {
        var counting = new CountingSource();
        for (var i = 0; i < 10_000; i++)
        {
            counting.Data[$"MsiProxy:Clients:{i}:Name"] = $"c{i}";
            counting.Data[$"MsiProxy:Clients:{i}:Address"] = $"10.{i / 256}.{i % 256}.1";
            counting.Data[$"MsiProxy:Clients:{i}:Identities:0"] = "*";
        }

        var configuration = new ConfigurationBuilder().Add(counting).Build();
        var options = new MsiProxyOptions();

        ClientsConfiguration.Bind(configuration, configuration.GetSection(MsiProxyOptions.SectionName), options);

        Assert.Equal(10_000, options.Clients.Count);
        Assert.Equal("c9999", options.Clients[^1].Name);
        Assert.Equal(1, counting.Provider!.ClientPasses);
    }

    private static IEnumerable<KeyValuePair<string, string?>> Flatten(List<(string Element, (string Key, string? Value)[] Keys)> layer) =>
        layer.SelectMany(e => e.Keys.Select(k =>
            KeyValuePair.Create(k.Key.Length == 0 ? $"{Path}:{e.Element}" : $"{Path}:{e.Element}:{k.Key}", k.Value)))
            .GroupBy(kv => kv.Key, StringComparer.OrdinalIgnoreCase).Select(g => g.Last());

    /// <summary>The clients (as JSON) the binder gives, and those <see cref="ClientsConfiguration.Bind"/> gives.</summary>
    private static (string Binder, string OnePass) BothWays(IConfigurationRoot configuration)
    {
        var section = configuration.GetSection(MsiProxyOptions.SectionName);
        var byBinder = new MsiProxyOptions();
        section.Bind(byBinder);
        var onePass = new MsiProxyOptions();
        ClientsConfiguration.Bind(configuration, section, onePass);
        Assert.Equal(byBinder.HoldTimeout, onePass.HoldTimeout);
        return (JsonSerializer.Serialize(byBinder.Clients), JsonSerializer.Serialize(onePass.Clients));
    }

    private sealed class CountingSource : IConfigurationSource
    {
        public Dictionary<string, string?> Data { get; } = new(StringComparer.OrdinalIgnoreCase);
        public CountingProvider? Provider { get; private set; }

        public IConfigurationProvider Build(IConfigurationBuilder builder) => Provider = new CountingProvider(Data);
    }

    private sealed class CountingProvider : ConfigurationProvider
    {
        public CountingProvider(Dictionary<string, string?> data)
        {
            foreach (var (key, value) in data)
            {
                Data[key] = value;
            }
        }

        public int ClientPasses { get; private set; }

        public override IEnumerable<string> GetChildKeys(IEnumerable<string> earlierKeys, string? parentPath)
        {
            if (parentPath is not null && parentPath.StartsWith(Path, StringComparison.OrdinalIgnoreCase))
            {
                ClientPasses++;
            }

            return base.GetChildKeys(earlierKeys, parentPath);
        }
    }
}
