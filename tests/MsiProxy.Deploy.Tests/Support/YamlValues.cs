using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace MsiProxy.Deploy.Tests.Support;

/// <summary>
/// YAML to plain values (dictionaries, lists, long/double/bool/string/null) resolved with the YAML 1.2 core schema,
/// the way Helm sees values.yaml: `true` is a bool, `8080` a number, `"8080"` a string.
/// </summary>
internal static partial class YamlValues
{
    public static object? Parse(string yaml)
    {
        var documents = ParseAll(yaml);
        return documents.Count == 0 ? null : documents[0];
    }

    /// <summary>Every document of a multi-document stream (rendered manifests), skipping empty ones.</summary>
    public static List<object?> ParseAll(string yaml)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(yaml));
        return stream.Documents.Select(d => Convert(d.RootNode)).Where(d => d is not null).ToList();
    }

    public static object? Convert(YamlNode node) => node switch
    {
        YamlMappingNode map => map.Children.ToDictionary(p => ((YamlScalarNode)p.Key).Value!, p => Convert(p.Value), StringComparer.Ordinal),
        YamlSequenceNode seq => seq.Children.Select(Convert).ToList(),
        YamlScalarNode scalar => Scalar(scalar),
        _ => throw new InvalidOperationException($"unsupported YAML node {node.NodeType}"),
    };

    private static object? Scalar(YamlScalarNode scalar)
    {
        var text = scalar.Value ?? "";
        if (scalar.Style != ScalarStyle.Plain)
        {
            return text;
        }

        if (text is "" or "~" or "null" or "Null" or "NULL")
        {
            return null;
        }

        if (text is "true" or "True" or "TRUE")
        {
            return true;
        }

        if (text is "false" or "False" or "FALSE")
        {
            return false;
        }

        if (IntPattern().IsMatch(text))
        {
            return long.Parse(text, CultureInfo.InvariantCulture);
        }

        if (FloatPattern().IsMatch(text))
        {
            return double.Parse(text, CultureInfo.InvariantCulture);
        }

        return text;
    }

    [GeneratedRegex(@"^[-+]?[0-9]+$")]
    private static partial Regex IntPattern();

    [GeneratedRegex(@"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")]
    private static partial Regex FloatPattern();

    public static JsonNode? ToJson(object? value) => value switch
    {
        null => null,
        IDictionary<string, object?> map => new JsonObject(map.Select(p => KeyValuePair.Create(p.Key, ToJson(p.Value)))),
        IList<object?> list => new JsonArray(list.Select(ToJson).ToArray()),
        bool b => JsonValue.Create(b),
        long l => JsonValue.Create(l),
        double d => JsonValue.Create(d),
        string s => JsonValue.Create(s),
        _ => throw new InvalidOperationException($"unsupported value {value.GetType().Name}"),
    };

    /// <summary>The map at a path; index it by keys that hold dots themselves (labels such as "app.kubernetes.io/name").</summary>
    public static IDictionary<string, object?> Map(object? value, string path) => (IDictionary<string, object?>)At(value, path)!;

    /// <summary>Reads a path such as "spec.template.spec.nodeSelector" from parsed values.</summary>
    public static object? At(object? value, string path)
    {
        foreach (var part in path.Split('.'))
        {
            value = value switch
            {
                IDictionary<string, object?> map when map.TryGetValue(part, out var next) => next,
                IList<object?> list when int.TryParse(part, CultureInfo.InvariantCulture, out var index) && index < list.Count => list[index],
                _ => throw new KeyNotFoundException($"'{part}' of '{path}' not found"),
            };
        }

        return value;
    }
}
