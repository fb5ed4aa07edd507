using System.Text.RegularExpressions;
using MsiProxy.Clients;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

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
/// Unknown keys are errors, so a typo cannot silently widen or drop a binding; so are a key given twice and a second
/// document, which a reader could take as the one that counts. A proof that needs the identity header without a Secret
/// to read it from is an error too: it could only refuse every pod of the binding. The file is read as YAML's node tree,
/// walked here, rather than deserialized into classes: YamlDotNet's deserializer works by reflection (no Native AOT).
/// </summary>
internal static partial class BindingsParser
{
    private static readonly string[] EntryKeys = ["namespace", "serviceAccount", "podSelector", "identities", "proof", "identityHeaderSecret"];

    public static BindingSet Parse(string text)
    {
        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(text));
        }
        catch (YamlException ex)
        {
            throw Invalid(ex.Message, ex.Start, ex);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // YamlDotNet's loader throws more than YamlException on some text (InvalidOperationException after "...",
            // ArgumentException for a key it cannot place; BindingsParserPropertyTests found both). It reads a string in
            // memory, so whatever it throws means the same: this text is not bindings. Anything but FormatException
            // would have escaped the watcher and stopped the proxy.
            throw new FormatException($"bindings file is not valid: {ex.Message}", ex);
        }

        if (stream.Documents.Count > 1)
        {
            throw Invalid($"it holds {stream.Documents.Count} YAML documents; one is read", stream.Documents[1].RootNode.Start);
        }

        if (stream.Documents.Count == 0 || IsNull(stream.Documents[0].RootNode))
        {
            return BindingSet.Empty;
        }

        var root = Fields(stream.Documents[0].RootNode, "the document", ["bindings"]);
        if (!root.TryGetValue("bindings", out var list) || IsNull(list))
        {
            return BindingSet.Empty;
        }

        var bindings = new List<PodBinding>();
        var entries = Sequence(list, "bindings");
        for (var i = 0; i < entries.Count; i++)
        {
            bindings.Add(ToBinding(entries[i], $"bindings[{i}]"));
        }

        return new BindingSet(bindings);
    }

    private static PodBinding ToBinding(YamlNode node, string where)
    {
        if (IsNull(node))
        {
            throw new FormatException($"{where} is empty");
        }

        var entry = Fields(node, where, EntryKeys);
        var ns = Required(Scalar(entry, "namespace", where), $"{where}.namespace");
        var serviceAccount = Required(Scalar(entry, "serviceAccount", where), $"{where}.serviceAccount");
        var texts = entry.TryGetValue("identities", out var identityList) && !IsNull(identityList)
            ? Sequence(identityList, $"{where}.identities").Select((item, j) => ScalarValue(item, $"{where}.identities[{j}]")).ToList()
            : [];
        if (texts.Count == 0)
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
        if (entry.TryGetValue("podSelector", out var selectorNode) && !IsNull(selectorNode))
        {
            var selector = Fields(selectorNode, $"{where}.podSelector", ["matchLabels"]);
            if (selector.TryGetValue("matchLabels", out var matchLabels) && !IsNull(matchLabels))
            {
                foreach (var (key, value) in Fields(matchLabels, $"{where}.podSelector.matchLabels", allowed: null))
                {
                    labels[Required(key, $"{where}.podSelector.matchLabels key")] = ScalarValue(value, $"{where}.podSelector.matchLabels.{key}") ?? "";
                }
            }
        }

        var proofText = Scalar(entry, "proof", where);
        if (!ProofPolicies.TryParse(proofText, out var proof))
        {
            throw new FormatException($"{where}.proof: '{proofText}' is not a proof policy ({ProofPolicies.Names})");
        }

        SecretKeyReference? secret = null;
        if (entry.TryGetValue("identityHeaderSecret", out var secretNode) && !IsNull(secretNode))
        {
            var reference = Fields(secretNode, $"{where}.identityHeaderSecret", ["name", "key"]);
            secret = new SecretKeyReference(
                SecretName(Scalar(reference, "name", $"{where}.identityHeaderSecret"), $"{where}.identityHeaderSecret.name"),
                SecretKey(Scalar(reference, "key", $"{where}.identityHeaderSecret"), $"{where}.identityHeaderSecret.key"));
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

    /// <summary>A mapping's entries by key, in order; a key not in <paramref name="allowed"/> (when given) or given twice is an error.</summary>
    private static Dictionary<string, YamlNode> Fields(YamlNode node, string where, string[]? allowed)
    {
        if (node is not YamlMappingNode mapping)
        {
            throw Invalid($"{where} must be a mapping", node.Start);
        }

        var fields = new Dictionary<string, YamlNode>(StringComparer.Ordinal);
        foreach (var (keyNode, value) in mapping.Children)
        {
            var key = ScalarValue(keyNode, $"a key of {where}") ?? "";
            if (allowed is not null && !allowed.Contains(key, StringComparer.Ordinal))
            {
                throw Invalid($"{where} has an unknown key '{key}' (known: {string.Join(", ", allowed)})", keyNode.Start);
            }

            if (!fields.TryAdd(key, value))
            {
                throw Invalid($"{where} has the key '{key}' twice", keyNode.Start);
            }
        }

        return fields;
    }

    private static IList<YamlNode> Sequence(YamlNode node, string where) =>
        node is YamlSequenceNode sequence ? sequence.Children : throw Invalid($"{where} must be a list", node.Start);

    private static string? Scalar(Dictionary<string, YamlNode> fields, string key, string where) =>
        fields.TryGetValue(key, out var node) ? ScalarValue(node, $"{where}.{key}") : null;

    /// <summary>A scalar's text, or null for YAML's null (<c>~</c>, <c>null</c>, nothing); a list or mapping is an error.</summary>
    private static string? ScalarValue(YamlNode node, string where) => node switch
    {
        _ when IsNull(node) => null,
        YamlScalarNode scalar => scalar.Value,
        _ => throw Invalid($"{where} must be a single value", node.Start),
    };

    /// <summary>YAML's null as the deserializer read it: a plain (unquoted) empty, <c>~</c> or <c>null</c>.</summary>
    private static bool IsNull(YamlNode node) =>
        node is YamlScalarNode { Style: ScalarStyle.Plain or ScalarStyle.Any, Value: null or "" or "~" or "null" or "Null" or "NULL" };

    private static FormatException Invalid(string problem, Mark at, Exception? inner = null) =>
        new($"bindings file is not valid: {problem} (line {at.Line}, column {at.Column})", inner);
}
