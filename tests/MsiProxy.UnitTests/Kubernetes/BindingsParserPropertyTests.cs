using System.Text;
using System.Text.Json;
using CsCheck;
using MsiProxy.Clients;
using MsiProxy.Kubernetes.Bindings;

namespace MsiProxy.UnitTests.Kubernetes;

/// <summary>
/// The bindings file over generated input: any set of bindings, written as block YAML or as JSON with names and labels
/// full of YAML's own punctuation, reads back as exactly what was written; and any text built from YAML's tokens is
/// either bindings or a <see cref="FormatException"/> — never another exception, which would stop the watcher from
/// reporting the file as invalid and keeping the last good bindings.
/// </summary>
public sealed class BindingsParserPropertyTests
{
    // Text that means something to YAML (indicators, comments, anchors, tags, document markers, escapes) and beyond ASCII.
    private static readonly Gen<char> NameChar = Gen.OneOf(
        Gen.Char['a', 'z'], Gen.Char['0', '9'], Gen.Char[' ', '~'], Gen.Char['\u0001', '\u001f'],
        Gen.OneOf('é', '→', '\u2028', '\u00a0', '\ufeff', '日'));

    private static readonly Gen<string> Name = Gen.String[NameChar, 1, 16].Where(s => s.Trim().Length == s.Length && s.Length > 0 && !string.IsNullOrWhiteSpace(s));

    private static readonly Gen<string> Identity = Gen.OneOf(
        Gen.Const("system"), Gen.Const("*"),
        Gen.Guid.Select(g => "client_id=" + g), Gen.Guid.Select(g => "object_id=" + g), Gen.Guid.Select(g => g.ToString()));

    private static readonly Gen<(string Proof, (string Name, string Key)? Secret)> Proof = Gen.OneOf(
        Gen.Const(("address", ((string, string)?)null)),
        Gen.Select(Gen.OneOf("address+secret", "secret"), Gen.String[Gen.Char['a', 'z'], 1, 8], Gen.String[Gen.Char['A', 'Z'], 1, 8],
            (proof, name, key) => (proof, ((string, string)?)(name, key))));

    private static readonly Gen<Binding> OneBinding = Gen.Select(
        Name, Name, Gen.Dictionary(Name, Gen.String[NameChar, 0, 8])[0, 3], Identity.List[1, 4], Proof,
        (ns, account, labels, identities, proof) => new Binding(ns, account, labels, identities, proof.Proof, proof.Secret));

    [Fact]
    public void Any_bindings_written_as_yaml_or_json_read_back_as_written()
    {
        Gen.Select(OneBinding.List[0, 4], Gen.Bool).Sample((bindings, asJson) =>
        {
            var text = asJson ? Json(bindings) : Yaml(bindings);
            var read = BindingsParser.Parse(text).Bindings;

            Assert.Equal(bindings.Count, read.Count);
            for (var i = 0; i < bindings.Count; i++)
            {
                var (written, parsed) = (bindings[i], read[i]);
                Assert.Equal(written.Namespace, parsed.Namespace);
                Assert.Equal(written.ServiceAccount, parsed.ServiceAccount);
                Assert.Equal(written.Labels.OrderBy(l => l.Key, StringComparer.Ordinal), parsed.MatchLabels.OrderBy(l => l.Key, StringComparer.Ordinal));
                Assert.Equal(written.Identities.Select(Selector), parsed.Identities.Select(b => (b.IsAny, b.Selector)));
                Assert.Equal(written.Proof, parsed.Proof.Name());
                Assert.Equal(written.Secret is { } s ? new SecretKeyReference(s.Name, s.Key) : null, parsed.IdentityHeaderSecret);
            }
        }, iter: 2000);
    }

    private static readonly Gen<string> Token = Gen.OneOf(
        Gen.OneOf("bindings", "namespace", "serviceAccount", "identities", "podSelector", "matchLabels", "proof", "identityHeaderSecret",
            "name", "key", "system", "secret", "*", "a"),
        Gen.OneOf(":", ": ", " ", "  ", "\n", "\n  ", "\n    ", "- ", "-", "{", "}", "[", "]", ",", "\"", "'", "#", "&x ", "*x", "!!str ",
            "!!map ", "? ", "|", ">", "---\n", "...\n", "~", "null", "\t", "%YAML 1.2\n", "\\", "\u0000", "\ufeff", "<<: "));

    [Fact]
    public void Any_yaml_shaped_text_is_bindings_or_a_format_error_and_nothing_else()
    {
        Token.Array[0, 40].Select(tokens => string.Concat(tokens)).Sample(text =>
        {
            try
            {
                BindingsParser.Parse(text);
            }
            catch (FormatException)
            {
                // The only way to refuse: the watcher reports it and keeps the last good bindings.
            }
        }, iter: 20_000);
    }

    private static (bool IsAny, IdentitySelector Selector) Selector(string text)
    {
        Assert.True(IdentityBinding.TryParse(text, out var binding, out _));
        return (binding.IsAny, binding.Selector);
    }

    private static string Yaml(IReadOnlyList<Binding> bindings)
    {
        // JSON's string escapes are YAML's double-quoted escapes, so every name is written exactly, whatever it holds.
        static string Quote(string s) => JsonSerializer.Serialize(s);
        var yaml = new StringBuilder("bindings:\n");
        foreach (var b in bindings)
        {
            yaml.Append("  - namespace: ").Append(Quote(b.Namespace)).Append('\n');
            yaml.Append("    serviceAccount: ").Append(Quote(b.ServiceAccount)).Append('\n');
            if (b.Labels.Count > 0)
            {
                yaml.Append("    podSelector:\n      matchLabels:\n");
                foreach (var (key, value) in b.Labels)
                {
                    yaml.Append("        ").Append(Quote(key)).Append(": ").Append(Quote(value)).Append('\n');
                }
            }

            yaml.Append("    identities:\n");
            foreach (var identity in b.Identities)
            {
                yaml.Append("      - ").Append(Quote(identity)).Append('\n');
            }

            yaml.Append("    proof: ").Append(b.Proof).Append('\n');
            if (b.Secret is { } secret)
            {
                yaml.Append("    identityHeaderSecret: { name: ").Append(secret.Name).Append(", key: ").Append(secret.Key).Append(" }\n");
            }
        }

        return yaml.ToString();
    }

    private static string Json(IReadOnlyList<Binding> bindings) => JsonSerializer.Serialize(new Dictionary<string, object>
    {
        ["bindings"] = bindings.Select(b => new Dictionary<string, object?>
        {
            ["namespace"] = b.Namespace,
            ["serviceAccount"] = b.ServiceAccount,
            ["podSelector"] = new Dictionary<string, object> { ["matchLabels"] = b.Labels },
            ["identities"] = b.Identities,
            ["proof"] = b.Proof,
            ["identityHeaderSecret"] = b.Secret is { } s ? new Dictionary<string, string> { ["name"] = s.Name, ["key"] = s.Key } : null,
        }).ToList(),
    });

    private sealed record Binding(string Namespace, string ServiceAccount, Dictionary<string, string> Labels, List<string> Identities,
        string Proof, (string Name, string Key)? Secret);
}
