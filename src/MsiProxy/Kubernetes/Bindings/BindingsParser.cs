using MsiProxy.Clients;
using YamlDotNet.Core;
using YamlDotNet.Serialization;
using YamlDotNet.Serialization.NamingConventions;

namespace MsiProxy.Kubernetes.Bindings;

/// <summary>
/// Reads the bindings file (YAML, or JSON which is YAML too):
/// <code>
/// bindings:
///   - namespace: team-a
///     serviceAccount: api
///     podSelector: { matchLabels: { app: api } }   # optional, narrows only
///     identities: [ "client_id=…", "msi_res_id=/subscriptions/…" ]
/// </code>
/// Unknown keys are errors, so a typo cannot silently widen or drop a binding.
/// </summary>
internal static class BindingsParser
{
    private static readonly IDeserializer Deserializer = new DeserializerBuilder()
        .WithNamingConvention(CamelCaseNamingConvention.Instance)
        .Build();

    public static BindingSet Parse(string text)
    {
        BindingsDocument? document;
        try
        {
            document = Deserializer.Deserialize<BindingsDocument?>(text);
        }
        catch (YamlException ex)
        {
            throw new FormatException($"bindings file is not valid: {ex.Message} (line {ex.Start.Line}, column {ex.Start.Column})", ex);
        }

        if (document?.Bindings is not { } entries)
        {
            return BindingSet.Empty;
        }

        var bindings = new List<PodBinding>();
        for (var i = 0; i < entries.Count; i++)
        {
            bindings.Add(ToBinding(entries[i], $"bindings[{i}]"));
        }

        return new BindingSet(bindings);
    }

    private static PodBinding ToBinding(BindingEntry? entry, string where)
    {
        if (entry is null)
        {
            throw new FormatException($"{where} is empty");
        }

        var ns = Required(entry.Namespace, $"{where}.namespace");
        var serviceAccount = Required(entry.ServiceAccount, $"{where}.serviceAccount");
        if (entry.Identities is not { Count: > 0 } texts)
        {
            throw new FormatException($"{where}.identities must list at least one identity");
        }

        var identities = new List<IdentityBinding>();
        for (var j = 0; j < texts.Count; j++)
        {
            if (!IdentityBinding.TryParse(texts[j], out var identity, out var error))
            {
                throw new FormatException($"{where}.identities[{j}] = '{texts[j]}': {error}");
            }

            identities.Add(identity);
        }

        var labels = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (key, value) in entry.PodSelector?.MatchLabels ?? [])
        {
            labels[Required(key, $"{where}.podSelector.matchLabels key")] = value ?? "";
        }

        return new PodBinding(ns, serviceAccount, labels, identities);
    }

    private static string Required(string? value, string where) =>
        string.IsNullOrWhiteSpace(value) ? throw new FormatException($"{where} is required") : value.Trim();

#pragma warning disable CA1812, CA2227 // instantiated and filled by the YAML deserializer
    private sealed class BindingsDocument
    {
        public List<BindingEntry?>? Bindings { get; set; }
    }

    private sealed class BindingEntry
    {
        public string? Namespace { get; set; }
        public string? ServiceAccount { get; set; }
        public PodSelector? PodSelector { get; set; }
        public List<string>? Identities { get; set; }
    }

    private sealed class PodSelector
    {
        public Dictionary<string, string?>? MatchLabels { get; set; }
    }
#pragma warning restore CA1812, CA2227
}
