using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Primitives;

namespace MsiProxy.Configuration;

/// <summary>
/// Binds <see cref="MsiProxyOptions"/> with <c>MsiProxy:Clients</c> read in one pass. The configuration binder reads a
/// list by asking each provider for the children of every element, and each such question scans every key the
/// provider holds: 10,000 clients took ~23 s to bind (docs/benchmarks.md, "Registration and configuration at scale").
/// Here each provider is asked once for the keys under <c>MsiProxy:Clients</c>, then each client's known keys are looked
/// up directly. The result is what the binder gives — the same <see cref="ClientOptions"/>, in the same order, so
/// validation names the same keys — and whenever the one pass cannot prove that (a provider that is not a plain
/// key/value <see cref="ConfigurationProvider"/>, such as a chained configuration, an unknown key, an element with a
/// value of its own, a gap in a list), the whole list goes through the binder instead.
/// </summary>
internal static class ClientsConfiguration
{
    private const string ClientsKey = "Clients";

    /// <summary>Binds <paramref name="options"/> from <paramref name="section"/> (<c>MsiProxy</c> of <paramref name="root"/>).</summary>
    public static void Bind(IConfiguration root, IConfigurationSection section, MsiProxyOptions options)
    {
        new WithoutClients(section).Bind(options);
        options.Clients.AddRange(Read(root, section.Path + ConfigurationPath.KeyDelimiter + ClientsKey)
            ?? section.GetSection(ClientsKey).Get<List<ClientOptions>>() ?? []); // appended, as the binder does
    }

    /// <summary>The clients under <paramref name="path"/> read in one pass, or null when only the binder can read them.</summary>
    internal static List<ClientOptions>? Read(IConfiguration root, string path)
    {
        if (root is not IConfigurationRoot { Providers: var all })
        {
            return null;
        }

        // Per provider, how many keys lie under each element: the base class answers one child key per key below.
        var providers = new List<(IConfigurationProvider Provider, Dictionary<string, int> Keys)>();
        var elements = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (var provider in all)
        {
            var children = provider.GetChildKeys([], path);
            if (provider is not ConfigurationProvider)
            {
                if (children.Any())
                {
                    return null;
                }

                continue;
            }

            var keys = new Dictionary<string, int>(StringComparer.OrdinalIgnoreCase);
            foreach (var child in children)
            {
                keys[child] = keys.GetValueOrDefault(child) + 1;
                elements.Add(child);
            }

            providers.Add((provider, keys));
        }

        // Only canonical indexes (0, 1, 2…): "01" and "1" are two elements that the binder orders by a rule of its own,
        // and a later client with the same address displaces an earlier one, so the order decides who owns an address.
        if (elements.Any(e => !IsCanonicalIndex(e)))
        {
            return null;
        }

        var ordered = elements.ToList();
        ordered.Sort(ConfigurationKeyComparer.Instance);
        var clients = new List<ClientOptions>(ordered.Count);
        var seen = new int[providers.Count];
        foreach (var element in ordered)
        {
            Array.Clear(seen);
            var prefix = path + ConfigurationPath.KeyDelimiter + element;
            if (Lookup(providers, prefix, seen, out _))
            {
                return null; // the element has a value of its own
            }

            var client = new ClientOptions();
            client.Name = Scalar(providers, prefix + ":Name", seen);
            client.Address = Scalar(providers, prefix + ":Address", seen);
            client.Proof = Scalar(providers, prefix + ":Proof", seen);
            client.IdentityHeaderSha256 = Scalar(providers, prefix + ":IdentityHeaderSha256", seen);
            if (!List(providers, prefix + ":Identities", seen, client.Identities)
                || !List(providers, prefix + ":Prefetch", seen, client.Prefetch)
                || !List(providers, prefix + ":Endpoints", seen, client.Endpoints))
            {
                return null;
            }

            for (var p = 0; p < providers.Count; p++)
            {
                if (seen[p] != providers[p].Keys.GetValueOrDefault(element))
                {
                    return null; // a key this reader does not know (or a list element it did not reach)
                }
            }

            clients.Add(client);
        }

        return clients;
    }

    private static bool IsCanonicalIndex(string key) =>
        int.TryParse(key, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var index)
        && index.ToString(System.Globalization.CultureInfo.InvariantCulture) == key;

        private static string? Scalar(List<(IConfigurationProvider Provider, Dictionary<string, int> Keys)> providers, string key, int[] seen) =>
        Lookup(providers, key, seen, out var value) ? value : null;

    /// <summary>A list of strings at <paramref name="key"/>: elements 0, 1, 2… until one is missing everywhere.</summary>
    private static bool List(List<(IConfigurationProvider Provider, Dictionary<string, int> Keys)> providers, string key, int[] seen, List<string> into)
    {
        if (Lookup(providers, key, seen, out var own) && !string.IsNullOrEmpty(own))
        {
            return false; // a value where a list is expected (an empty JSON array is ""): the binder decides what that means
        }

        for (var i = 0; ; i++)
        {
            if (!Lookup(providers, key + ConfigurationPath.KeyDelimiter + i.ToString(System.Globalization.CultureInfo.InvariantCulture), seen, out var item))
            {
                return true;
            }

            into.Add(item!); // null included, as the binder adds it
        }
    }

    /// <summary>The value the configuration root gives for <paramref name="key"/> (the last provider that has it wins), counting who has it.</summary>
    private static bool Lookup(List<(IConfigurationProvider Provider, Dictionary<string, int> Keys)> providers, string key, int[] seen, out string? value)
    {
        value = null;
        var found = false;
        for (var p = 0; p < providers.Count; p++)
        {
            if (providers[p].Provider.TryGet(key, out var candidate))
            {
                seen[p]++;
                value = candidate;
                found = true;
            }
        }

        return found;
    }

    /// <summary>The <c>MsiProxy</c> section as the binder sees it, minus <c>Clients</c> (read above).</summary>
    private sealed class WithoutClients(IConfigurationSection section) : IConfiguration
    {
        private static readonly IConfigurationSection Nothing = new ConfigurationBuilder().Build().GetSection(ClientsKey);

        public string? this[string key]
        {
            get => section[key];
            set => section[key] = value;
        }

        public IEnumerable<IConfigurationSection> GetChildren() =>
            section.GetChildren().Where(c => !string.Equals(c.Key, ClientsKey, StringComparison.OrdinalIgnoreCase));

        public IChangeToken GetReloadToken() => section.GetReloadToken();

        public IConfigurationSection GetSection(string key) =>
            string.Equals(key, ClientsKey, StringComparison.OrdinalIgnoreCase) ? Nothing : section.GetSection(key);
    }
}
