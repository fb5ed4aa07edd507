using System.Text.RegularExpressions;
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
///     proof: address+secret                        # optional: address (default), address+secret or secret
///     identityHeaderSecret: { name: app-identity, key: IDENTITY_HEADER }   # a Secret in the pod's namespace
/// </code>
/// Unknown keys are errors, so a typo cannot silently widen or drop a binding. A proof that needs the identity header
/// without a Secret to read it from is an error too: it could only refuse every pod of the binding.
/// </summary>
internal static partial class BindingsParser
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

        if (!ProofPolicies.TryParse(entry.Proof, out var proof))
        {
            throw new FormatException($"{where}.proof: '{entry.Proof}' is not a proof policy ({ProofPolicies.Names})");
        }

        SecretKeyReference? secret = null;
        if (entry.IdentityHeaderSecret is { } reference)
        {
            secret = new SecretKeyReference(
                SecretName(reference.Name, $"{where}.identityHeaderSecret.name"), SecretKey(reference.Key, $"{where}.identityHeaderSecret.key"));
        }

        if (proof.NeedsSecret() && secret is null)
        {
            throw new FormatException($"{where}.identityHeaderSecret is required by proof '{proof.Name()}' ({{ name: <Secret in {ns}>, key: <key> }})");
        }

        if (!proof.NeedsSecret() && secret is not null)
        {
            // Reading a Secret that no check uses would only suggest a protection that is not there.
            throw new FormatException($"{where}.identityHeaderSecret is not used by proof '{proof.Name()}': "
                + $"set proof to '{ProofPolicies.AddressAndSecretName}' or '{ProofPolicies.SecretName}'");
        }

        return new PodBinding(ns, serviceAccount, labels, identities) { Proof = proof, IdentityHeaderSecret = secret };
    }

    /// <summary>A Secret's name is a DNS subdomain (RFC 1123): anything else cannot exist, so it is a typo.</summary>
    private static string SecretName(string? value, string where)
    {
        var name = Required(value, where);
        return name.Length <= 253 && SecretNamePattern().IsMatch(name)
            ? name
            : throw new FormatException($"{where} = '{name}' is not a Secret name (lower-case letters, digits, '-' and '.')");
    }

    /// <summary>A Secret's keys are letters, digits, '-', '_' and '.'.</summary>
    private static string SecretKey(string? value, string where)
    {
        var key = Required(value, where);
        return key.Length <= 253 && SecretKeyPattern().IsMatch(key)
            ? key
            : throw new FormatException($"{where} = '{key}' is not a Secret key (letters, digits, '-', '_' and '.')");
    }

    [GeneratedRegex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")]
    private static partial Regex SecretNamePattern();

    [GeneratedRegex("^[-._a-zA-Z0-9]+$")]
    private static partial Regex SecretKeyPattern();

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
        public string? Proof { get; set; }
        public SecretKeySelector? IdentityHeaderSecret { get; set; }
    }

    private sealed class SecretKeySelector
    {
        public string? Name { get; set; }
        public string? Key { get; set; }
    }

    private sealed class PodSelector
    {
        public Dictionary<string, string?>? MatchLabels { get; set; }
    }
#pragma warning restore CA1812, CA2227
}
