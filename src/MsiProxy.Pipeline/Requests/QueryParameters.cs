namespace MsiProxy.Requests;

/// <summary>
/// A query string parsed the way IMDS is documented to: names are unique, compared without case (a duplicate is an
/// error), names and values strictly percent-decoded once ('+' is a space). Parsed once per request; nothing downstream
/// re-reads the raw query — the upstream query is rebuilt from these values.
/// </summary>
internal sealed class QueryParameters
{
    private readonly List<KeyValuePair<string, string>> _pairs;

    private QueryParameters(List<KeyValuePair<string, string>> pairs) => _pairs = pairs;

    public static readonly QueryParameters Empty = new([]);

    public IReadOnlyList<KeyValuePair<string, string>> Pairs => _pairs;

    public string? this[string name]
    {
        get
        {
            foreach (var pair in _pairs)
            {
                if (pair.Key.Equals(name, StringComparison.OrdinalIgnoreCase))
                {
                    return pair.Value;
                }
            }

            return null;
        }
    }

    /// <param name="rawQuery">The query without the leading '?'.</param>
    public static bool TryParse(ReadOnlySpan<char> rawQuery, out QueryParameters query, out string? error)
    {
        query = Empty;
        error = null;
        if (rawQuery.IsEmpty)
        {
            return true;
        }

        var pairs = new List<KeyValuePair<string, string>>();
        foreach (var range in rawQuery.Split('&'))
        {
            var part = rawQuery[range];
            if (part.IsEmpty)
            {
                continue;
            }

            var equals = part.IndexOf('=');
            var rawName = equals < 0 ? part : part[..equals];
            var rawValue = equals < 0 ? [] : part[(equals + 1)..];
            if (!PercentDecoding.TryDecode(rawName, plusIsSpace: true, out var name)
                || !PercentDecoding.TryDecode(rawValue, plusIsSpace: true, out var value))
            {
                error = "The query string has malformed percent-encoding";
                return false;
            }

            if (name.Length == 0)
            {
                error = "The query string has a parameter without a name";
                return false;
            }

            foreach (var existing in pairs)
            {
                if (existing.Key.Equals(name, StringComparison.OrdinalIgnoreCase))
                {
                    error = $"Duplicate query parameter '{name}'";
                    return false;
                }
            }

            pairs.Add(new(name, value));
        }

        query = new QueryParameters(pairs);
        return true;
    }
}
