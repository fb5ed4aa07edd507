using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using YamlDotNet.Serialization;

namespace MsiProxy.Deploy.Tests.Charts;

/// <summary>
/// A small renderer for the subset of Go text/template + Sprig that charts/msi-proxy uses, because CI has no helm.
/// Supported: text with {{- -}} trimming, comments, if/else if/else, range (lists and maps, with $i, $v), with/else,
/// define/include, variables ($x := ..., $), pipelines, parentheses, and the functions in <see cref="Functions"/>.
/// Anything else is a <see cref="TemplateException"/>, so a template that strays outside the subset fails the tests
/// instead of being rendered wrongly. Values are plain dictionaries/lists/scalars (see <see cref="YamlValues"/>).
/// </summary>
internal sealed partial class GoTemplate
{
    private readonly Dictionary<string, List<Node>> _defines = new(StringComparer.Ordinal);

    /// <summary>Parses a template file; its define blocks become available to every file parsed into this instance.</summary>
    public List<Node> Parse(string text, string fileName)
    {
        var tokens = Lex(text, fileName);
        var position = 0;
        var nodes = ParseList(tokens, ref position, fileName, out var terminator);
        if (terminator is not null)
        {
            throw new TemplateException($"{fileName}: unexpected {{{{{terminator}}}}}");
        }

        return nodes;
    }

    public string Render(List<Node> nodes, object? data)
    {
        var output = new StringBuilder();
        var scope = new Scope(null);
        scope.Set("$", data);
        Execute(nodes, data, scope, output);
        return output.ToString();
    }

    // ---------------------------------------------------------------- lexing

    private sealed record Token(bool IsAction, string Text);

    private static List<Token> Lex(string text, string fileName)
    {
        var tokens = new List<Token>();
        var i = 0;
        var trimNextText = false;
        while (i < text.Length)
        {
            var open = text.IndexOf("{{", i, StringComparison.Ordinal);
            var literal = open < 0 ? text[i..] : text[i..open];
            if (trimNextText)
            {
                literal = literal.TrimStart();
            }

            if (open < 0)
            {
                tokens.Add(new Token(false, literal));
                break;
            }

            var trimLeft = open + 2 < text.Length && text[open + 2] == '-' && open + 3 < text.Length && char.IsWhiteSpace(text[open + 3]);
            if (trimLeft)
            {
                literal = literal.TrimEnd();
            }

            tokens.Add(new Token(false, literal));
            var start = open + (trimLeft ? 3 : 2);
            var close = FindClose(text, start, fileName);
            var trimRight = close > start && text[close - 1] == '-' && char.IsWhiteSpace(text[close - 2]);
            var body = text[start..(trimRight ? close - 1 : close)].Trim();
            if (!(body.StartsWith("/*", StringComparison.Ordinal) && body.EndsWith("*/", StringComparison.Ordinal)))
            {
                tokens.Add(new Token(true, body));
            }

            trimNextText = trimRight;
            i = close + 2;
        }

        return tokens;
    }

    private static int FindClose(string text, int start, string fileName)
    {
        var inString = '\0';
        for (var i = start; i < text.Length - 1; i++)
        {
            var c = text[i];
            if (inString != '\0')
            {
                if (c == '\\' && inString == '"')
                {
                    i++;
                }
                else if (c == inString)
                {
                    inString = '\0';
                }
            }
            else if (c is '"' or '`')
            {
                inString = c;
            }
            else if (c == '}' && text[i + 1] == '}')
            {
                return i;
            }
        }

        throw new TemplateException($"{fileName}: unclosed action");
    }

    // ---------------------------------------------------------------- parsing

    internal abstract record Node;

    private sealed record TextNode(string Text) : Node;

    private sealed record ActionNode(Pipeline Pipeline) : Node;

    private sealed record IfNode(Pipeline Condition, List<Node> Then, List<Node> Else) : Node;

    private sealed record WithNode(Pipeline Value, List<Node> Body, List<Node> Else) : Node;

    private sealed record RangeNode(Pipeline Value, List<Node> Body, List<Node> Else) : Node;

    private List<Node> ParseList(List<Token> tokens, ref int position, string fileName, out string? terminator)
    {
        var nodes = new List<Node>();
        while (position < tokens.Count)
        {
            var token = tokens[position++];
            if (!token.IsAction)
            {
                if (token.Text.Length > 0)
                {
                    nodes.Add(new TextNode(token.Text));
                }

                continue;
            }

            var action = token.Text;
            if (action == "end" || action == "else" || action.StartsWith("else ", StringComparison.Ordinal))
            {
                terminator = action;
                return nodes;
            }

            var keyword = action.Split(' ', 2)[0];
            var rest = action.Length > keyword.Length ? action[(keyword.Length + 1)..].Trim() : "";
            switch (keyword)
            {
                case "if":
                    nodes.Add(ParseIf(rest, tokens, ref position, fileName));
                    break;
                case "with":
                case "range":
                    {
                        var body = ParseList(tokens, ref position, fileName, out var end);
                        var otherwise = new List<Node>();
                        if (end == "else")
                        {
                            otherwise = ParseList(tokens, ref position, fileName, out end);
                        }

                        RequireEnd(end, keyword, fileName);
                        var pipeline = ParsePipeline(rest, fileName);
                        nodes.Add(keyword == "with" ? new WithNode(pipeline, body, otherwise) : new RangeNode(pipeline, body, otherwise));
                        break;
                    }

                case "define":
                    {
                        var name = ParseStringLiteral(rest, fileName);
                        var body = ParseList(tokens, ref position, fileName, out var end);
                        RequireEnd(end, "define", fileName);
                        _defines[name] = body;
                        break;
                    }

                case "template":
                case "block":
                case "break":
                case "continue":
                    throw new TemplateException($"{fileName}: '{keyword}' is outside the supported subset");
                default:
                    nodes.Add(new ActionNode(ParsePipeline(action, fileName)));
                    break;
            }
        }

        terminator = null;
        return nodes;
    }

    private IfNode ParseIf(string condition, List<Token> tokens, ref int position, string fileName)
    {
        var then = ParseList(tokens, ref position, fileName, out var end);
        var otherwise = new List<Node>();
        if (end == "else")
        {
            otherwise = ParseList(tokens, ref position, fileName, out end);
            RequireEnd(end, "if", fileName);
        }
        else if (end is not null && end.StartsWith("else if ", StringComparison.Ordinal))
        {
            // "else if" shares the outer "end": parse it as a nested if that consumes that end.
            otherwise = [ParseIf(end["else if ".Length..].Trim(), tokens, ref position, fileName)];
        }
        else
        {
            RequireEnd(end, "if", fileName);
        }

        return new IfNode(ParsePipeline(condition, fileName), then, otherwise);
    }

    private static void RequireEnd(string? end, string keyword, string fileName)
    {
        if (end != "end")
        {
            throw new TemplateException($"{fileName}: '{keyword}' without matching end (found {end ?? "end of file"})");
        }
    }

    private static string ParseStringLiteral(string text, string fileName)
    {
        var words = Tokenize(text, fileName);
        if (words.Count != 1 || words[0].Kind != WordKind.String)
        {
            throw new TemplateException($"{fileName}: expected a string literal, got '{text}'");
        }

        return Unquote(words[0].Text);
    }

    private enum WordKind { String, Number, Identifier, Field, Variable, Open, Close, Pipe, Declare, Assign, Comma }

    private sealed record Word(WordKind Kind, string Text);

    [GeneratedRegex(@"\G(?:(?<s>""(?:[^""\\]|\\.)*""|`[^`]*`)|(?<n>-?\d+(?:\.\d+)?)(?![\w.])|(?<v>\$[A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)|(?<f>(?:\.[A-Za-z0-9_]+)+|\.)|(?<i>[A-Za-z_][A-Za-z0-9_]*)|(?<o>\()|(?<c>\))|(?<p>\|)|(?<d>:=)|(?<a>=)|(?<m>,)|(?<w>\s+))")]
    private static partial Regex WordPattern();

    private static List<Word> Tokenize(string text, string fileName)
    {
        var words = new List<Word>();
        var i = 0;
        while (i < text.Length)
        {
            var m = WordPattern().Match(text, i);
            if (!m.Success || m.Length == 0)
            {
                throw new TemplateException($"{fileName}: cannot parse '{text[i..]}'");
            }

            i += m.Length;
            if (m.Groups["w"].Success)
            {
                continue;
            }

            var kind = m.Groups["s"].Success ? WordKind.String
                : m.Groups["n"].Success ? WordKind.Number
                : m.Groups["v"].Success ? WordKind.Variable
                : m.Groups["f"].Success ? WordKind.Field
                : m.Groups["i"].Success ? WordKind.Identifier
                : m.Groups["o"].Success ? WordKind.Open
                : m.Groups["c"].Success ? WordKind.Close
                : m.Groups["p"].Success ? WordKind.Pipe
                : m.Groups["d"].Success ? WordKind.Declare
                : m.Groups["a"].Success ? WordKind.Assign
                : WordKind.Comma;
            words.Add(new Word(kind, m.Value));
        }

        return words;
    }

    private static string Unquote(string literal) =>
        literal[0] == '`' ? literal[1..^1] : JsonSerializer.Deserialize<string>(literal)!;

    /// <summary>A pipeline: optional variable declarations, then commands joined by |.</summary>
    internal sealed record Pipeline(IReadOnlyList<string> Declarations, bool IsAssignment, IReadOnlyList<Command> Commands);

    internal sealed record Command(IReadOnlyList<Operand> Operands);

    internal abstract record Operand;

    private sealed record LiteralOperand(object? Value) : Operand;

    private sealed record FieldOperand(string? Variable, IReadOnlyList<string> Path) : Operand;

    private sealed record FunctionOperand(string Name) : Operand;

    private sealed record NestedOperand(Pipeline Pipeline) : Operand;

    private static Pipeline ParsePipeline(string text, string fileName)
    {
        var words = Tokenize(text, fileName);
        var position = 0;
        var pipeline = ParsePipelineWords(words, ref position, fileName);
        if (position != words.Count)
        {
            throw new TemplateException($"{fileName}: unexpected '{words[position].Text}' in '{text}'");
        }

        return pipeline;
    }

    private static Pipeline ParsePipelineWords(List<Word> words, ref int position, string fileName)
    {
        var declarations = new List<string>();
        var isAssignment = false;
        var lookahead = position;
        while (lookahead < words.Count && words[lookahead].Kind == WordKind.Variable && !words[lookahead].Text.Contains('.', StringComparison.Ordinal))
        {
            var next = lookahead + 1 < words.Count ? words[lookahead + 1].Kind : (WordKind?)null;
            if (next == WordKind.Comma)
            {
                lookahead += 2;
                continue;
            }

            if (next is WordKind.Declare or WordKind.Assign)
            {
                for (var i = position; i <= lookahead; i += 2)
                {
                    declarations.Add(words[i].Text);
                }

                isAssignment = next == WordKind.Assign;
                position = lookahead + 2;
            }

            break;
        }

        var commands = new List<Command>();
        var operands = new List<Operand>();
        while (position < words.Count && words[position].Kind != WordKind.Close)
        {
            var word = words[position++];
            switch (word.Kind)
            {
                case WordKind.Pipe:
                    commands.Add(new Command(operands));
                    operands = [];
                    break;
                case WordKind.String:
                    operands.Add(new LiteralOperand(Unquote(word.Text)));
                    break;
                case WordKind.Number:
                    operands.Add(new LiteralOperand(word.Text.Contains('.', StringComparison.Ordinal)
                        ? double.Parse(word.Text, CultureInfo.InvariantCulture)
                        : long.Parse(word.Text, CultureInfo.InvariantCulture)));
                    break;
                case WordKind.Identifier when word.Text is "true" or "false":
                    operands.Add(new LiteralOperand(word.Text == "true"));
                    break;
                case WordKind.Identifier when word.Text == "nil":
                    operands.Add(new LiteralOperand(null));
                    break;
                case WordKind.Identifier:
                    operands.Add(new FunctionOperand(word.Text));
                    break;
                case WordKind.Field:
                    operands.Add(new FieldOperand(null, word.Text == "." ? [] : word.Text[1..].Split('.')));
                    break;
                case WordKind.Variable:
                    {
                        var parts = word.Text.Split('.');
                        operands.Add(new FieldOperand(parts[0], parts[1..]));
                        break;
                    }

                case WordKind.Open:
                    {
                        var inner = ParsePipelineWords(words, ref position, fileName);
                        if (position >= words.Count || words[position].Kind != WordKind.Close)
                        {
                            throw new TemplateException($"{fileName}: unclosed '('");
                        }

                        position++;
                        operands.Add(new NestedOperand(inner));
                        break;
                    }

                default:
                    throw new TemplateException($"{fileName}: unexpected '{word.Text}'");
            }
        }

        if (operands.Count == 0)
        {
            throw new TemplateException($"{fileName}: empty command in pipeline");
        }

        commands.Add(new Command(operands));
        return new Pipeline(declarations, isAssignment, commands);
    }

    // ---------------------------------------------------------------- execution

    private sealed class Scope(Scope? parent)
    {
        private readonly Dictionary<string, object?> _variables = new(StringComparer.Ordinal);

        public Scope? Parent { get; } = parent;

        public void Set(string name, object? value) => _variables[name] = value;

        public void Assign(string name, object? value)
        {
            for (var s = this; s is not null; s = s.Parent)
            {
                if (s._variables.ContainsKey(name))
                {
                    s._variables[name] = value;
                    return;
                }
            }

            throw new TemplateException($"undefined variable {name}");
        }

        public object? Get(string name)
        {
            for (var s = this; s is not null; s = s.Parent)
            {
                if (s._variables.TryGetValue(name, out var value))
                {
                    return value;
                }
            }

            throw new TemplateException($"undefined variable {name}");
        }
    }

    private void Execute(List<Node> nodes, object? dot, Scope scope, StringBuilder output)
    {
        foreach (var node in nodes)
        {
            switch (node)
            {
                case TextNode text:
                    output.Append(text.Text);
                    break;
                case ActionNode action:
                    {
                        var value = Evaluate(action.Pipeline, dot, scope);
                        if (action.Pipeline.Declarations.Count == 0)
                        {
                            output.Append(ToText(value));
                        }

                        break;
                    }

                case IfNode @if:
                    Execute(IsTrue(Evaluate(@if.Condition, dot, new Scope(scope))) ? @if.Then : @if.Else, dot, new Scope(scope), output);
                    break;
                case WithNode with:
                    {
                        var inner = new Scope(scope);
                        var value = Evaluate(with.Value, dot, inner);
                        if (IsTrue(value))
                        {
                            Execute(with.Body, value, inner, output);
                        }
                        else
                        {
                            Execute(with.Else, dot, inner, output);
                        }

                        break;
                    }

                case RangeNode range:
                    ExecuteRange(range, dot, scope, output);
                    break;
            }
        }
    }

    private void ExecuteRange(RangeNode range, object? dot, Scope scope, StringBuilder output)
    {
        var items = new List<(object? Key, object? Value)>();
        var pipeline = range.Value with { Declarations = [] };
        var collection = Evaluate(pipeline, dot, scope);
        switch (collection)
        {
            case null:
                break;
            case IDictionary<string, object?> map:
                items.AddRange(map.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => ((object?)p.Key, p.Value)));
                break;
            case IList<object?> list:
                items.AddRange(list.Select((v, i) => ((object?)(long)i, v)));
                break;
            case long count:
                items.AddRange(Enumerable.Range(0, (int)count).Select(i => ((object?)(long)i, (object?)(long)i)));
                break;
            default:
                throw new TemplateException($"range over {collection.GetType().Name} is not supported");
        }

        if (items.Count == 0)
        {
            Execute(range.Else, dot, new Scope(scope), output);
            return;
        }

        foreach (var (key, value) in items)
        {
            var inner = new Scope(scope);
            var declarations = range.Value.Declarations;
            if (declarations.Count == 1)
            {
                inner.Set(declarations[0], value);
            }
            else if (declarations.Count == 2)
            {
                inner.Set(declarations[0], key);
                inner.Set(declarations[1], value);
            }

            Execute(range.Body, value, inner, output);
        }
    }

    private object? Evaluate(Pipeline pipeline, object? dot, Scope scope)
    {
        object? result = null;
        var first = true;
        foreach (var command in pipeline.Commands)
        {
            result = EvaluateCommand(command, dot, scope, first ? null : new[] { result });
            first = false;
        }

        if (pipeline.Declarations.Count == 1)
        {
            if (pipeline.IsAssignment)
            {
                scope.Assign(pipeline.Declarations[0], result);
            }
            else
            {
                scope.Set(pipeline.Declarations[0], result);
            }
        }
        else if (pipeline.Declarations.Count > 1)
        {
            throw new TemplateException("multiple variables are only supported in range");
        }

        return result;
    }

    private object? EvaluateCommand(Command command, object? dot, Scope scope, object?[]? piped)
    {
        var head = command.Operands[0];
        var args = command.Operands.Skip(1).Select(o => EvaluateOperand(o, dot, scope)).ToList();
        if (piped is not null)
        {
            args.AddRange(piped);
        }

        if (head is FunctionOperand function)
        {
            return CallFunction(function.Name, args, dot);
        }

        var value = EvaluateOperand(head, dot, scope);
        if (value is Func<IReadOnlyList<object?>, object?> method)
        {
            return method(args);
        }

        if (args.Count > 0)
        {
            throw new TemplateException($"can't give arguments to a non-function ({head})");
        }

        return value;
    }

    private object? EvaluateOperand(Operand operand, object? dot, Scope scope) => operand switch
    {
        LiteralOperand literal => literal.Value,
        NestedOperand nested => Evaluate(nested.Pipeline, dot, scope),
        FieldOperand field => Walk(field.Variable is null ? dot : scope.Get(field.Variable), field.Path, field),
        FunctionOperand function => CallFunction(function.Name, [], dot),
        _ => throw new TemplateException($"unsupported operand {operand}"),
    };

    private static object? Walk(object? value, IReadOnlyList<string> path, FieldOperand origin)
    {
        foreach (var name in path)
        {
            value = value switch
            {
                IDictionary<string, object?> map => map.TryGetValue(name, out var next) ? next : null,
                null => throw new TemplateException($"nil pointer evaluating {origin.Variable}.{string.Join('.', path)} at '{name}'"),
                _ => throw new TemplateException($"can't evaluate field {name} in {value.GetType().Name}"),
            };
        }

        return value;
    }

    private string Include(string name, object? argument)
    {
        if (!_defines.TryGetValue(name, out var body))
        {
            throw new TemplateException($"no template \"{name}\"");
        }

        var output = new StringBuilder();
        var scope = new Scope(null);
        scope.Set("$", argument);
        Execute(body, argument, scope, output);
        return output.ToString();
    }

    // ---------------------------------------------------------------- functions

    /// <summary>The Sprig/Helm functions the chart may use.</summary>
    public static readonly IReadOnlySet<string> Functions = new HashSet<string>(StringComparer.Ordinal)
    {
        "include", "default", "toYaml", "toJson", "nindent", "indent", "quote", "printf", "trunc", "trimSuffix",
        "contains", "eq", "ne", "and", "or", "not", "b64enc", "required", "sha256sum", "empty", "dict",
    };

    private object? CallFunction(string name, List<object?> args, object? dot)
    {
        void Arity(int count)
        {
            if (args.Count != count)
            {
                throw new TemplateException($"{name} wants {count} arguments, got {args.Count}");
            }
        }

        switch (name)
        {
            case "include":
                Arity(2);
                return Include(ToText(args[0]), args[1]);
            case "default":
                Arity(2);
                return IsTrue(args[1]) ? args[1] : args[0];
            case "toYaml":
                Arity(1);
                return ToYaml(args[0]);
            case "toJson":
                Arity(1);
                return JsonSerializer.Serialize(Sorted(args[0]));
            case "nindent":
            case "indent":
                {
                    Arity(2);
                    var pad = new string(' ', (int)ToLong(args[0]));
                    var text = pad + ToText(args[1]).Replace("\n", "\n" + pad, StringComparison.Ordinal);
                    return name == "nindent" ? "\n" + text : text;
                }

            case "quote":
                return string.Join(' ', args.Where(a => a is not null).Select(a => "\"" + ToText(a).Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal) + "\""));
            case "printf":
                return Printf(ToText(args[0]), args.Skip(1).ToList());
            case "trunc":
                {
                    Arity(2);
                    var text = ToText(args[1]);
                    var length = (int)ToLong(args[0]);
                    return text.Length > length ? text[..length] : text;
                }

            case "trimSuffix":
                {
                    Arity(2);
                    var suffix = ToText(args[0]);
                    var text = ToText(args[1]);
                    return suffix.Length > 0 && text.EndsWith(suffix, StringComparison.Ordinal) ? text[..^suffix.Length] : text;
                }

            case "contains":
                Arity(2);
                return ToText(args[1]).Contains(ToText(args[0]), StringComparison.Ordinal);
            case "eq":
                Arity(2);
                return Equal(args[0], args[1]);
            case "ne":
                Arity(2);
                return !Equal(args[0], args[1]);
            case "and":
                return args.FirstOrDefault(a => !IsTrue(a), args.LastOrDefault());
            case "or":
                return args.FirstOrDefault(IsTrue, args.LastOrDefault());
            case "not":
                Arity(1);
                return !IsTrue(args[0]);
            case "empty":
                Arity(1);
                return !IsTrue(args[0]);
            case "b64enc":
                Arity(1);
                return Convert.ToBase64String(Encoding.UTF8.GetBytes(ToText(args[0])));
            case "sha256sum":
                Arity(1);
                return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(ToText(args[0]))));
            case "dict":
                {
                    // Sprig: dict "k1" v1 "k2" v2 …; a missing last value is "" (as in Sprig).
                    var map = new Dictionary<string, object?>(StringComparer.Ordinal);
                    for (var i = 0; i < args.Count; i += 2)
                    {
                        map[ToText(args[i])] = i + 1 < args.Count ? args[i + 1] : "";
                    }

                    return map;
                }

            case "required":
                Arity(2);
                return IsTrue(args[1]) ? args[1] : throw new TemplateException(ToText(args[0]));
            default:
                _ = dot;
                throw new TemplateException($"function \"{name}\" is outside the supported subset");
        }
    }

    private static string Printf(string format, List<object?> args)
    {
        var output = new StringBuilder();
        var next = 0;
        for (var i = 0; i < format.Length; i++)
        {
            if (format[i] != '%' || i + 1 >= format.Length)
            {
                output.Append(format[i]);
                continue;
            }

            var verb = format[++i];
            if (verb == '%')
            {
                output.Append('%');
            }
            else if (verb is 's' or 'v' or 'd')
            {
                output.Append(ToText(args[next++]));
            }
            else
            {
                throw new TemplateException($"printf verb %{verb} is outside the supported subset");
            }
        }

        return output.ToString();
    }

    private static bool Equal(object? a, object? b) => (a, b) switch
    {
        (null, null) => true,
        (long x, double y) => x == y,
        (double x, long y) => x == y,
        _ => Equals(a, b),
    };

    private static long ToLong(object? value) => value switch
    {
        long l => l,
        double d => (long)d,
        string s => long.Parse(s, CultureInfo.InvariantCulture),
        _ => throw new TemplateException($"expected a number, got {value}"),
    };

    /// <summary>Go's truth: false, 0, nil and empty strings/collections are false.</summary>
    internal static bool IsTrue(object? value) => value switch
    {
        null => false,
        bool b => b,
        long l => l != 0,
        double d => d != 0,
        string s => s.Length > 0,
        System.Collections.ICollection c => c.Count > 0,
        _ => true,
    };

    internal static string ToText(object? value) => value switch
    {
        null => "",
        bool b => b ? "true" : "false",
        long l => l.ToString(CultureInfo.InvariantCulture),
        double d => d.ToString("R", CultureInfo.InvariantCulture),
        string s => s,
        _ => throw new TemplateException($"cannot print a {value.GetType().Name} directly; use toYaml or toJson"),
    };

    /// <summary>Maps with sorted keys, as Go's encoders write them.</summary>
    private static object? Sorted(object? value) => value switch
    {
        IDictionary<string, object?> map => new SortedDictionary<string, object?>(
            map.ToDictionary(p => p.Key, p => Sorted(p.Value)), StringComparer.Ordinal),
        IList<object?> list => list.Select(Sorted).ToList(),
        _ => value,
    };

    private static readonly ISerializer YamlWriter = new SerializerBuilder()
        .WithQuotingNecessaryStrings()
        .DisableAliases()
        .Build();

    private static string ToYaml(object? value) => value is null ? "null" : YamlWriter.Serialize(Sorted(value)).TrimEnd('\n');
}

internal sealed class TemplateException(string message) : Exception(message);
