using System.Globalization;

namespace MsiProxy.Clients;

/// <summary>
/// What a client name may be, wherever registrations are made (configuration, the admin API, the state file, Docker
/// labels). Names travel into logs, the audit trail, span tags and admin output: a control character (a newline forging
/// a log line, an escape sequence for the operator's terminal) or an invisible format character (a right-to-left
/// override that makes one name read as another) is refused, not escaped somewhere later.
/// </summary>
public static class ClientNames
{
    public const int MaxLength = 253;

    /// <summary>Why <paramref name="name"/> cannot be a client name, or null when it can.</summary>
    public static string? Problem(string? name)
    {
        if (string.IsNullOrWhiteSpace(name))
        {
            return "is required";
        }

        if (name.Length > MaxLength)
        {
            return $"must be at most {MaxLength} characters";
        }

        for (var i = 0; i < name.Length; i++)
        {
            if (char.GetUnicodeCategory(name, i) is UnicodeCategory.Control or UnicodeCategory.Format
                or UnicodeCategory.LineSeparator or UnicodeCategory.ParagraphSeparator)
            {
                return $"must not contain control or format characters (U+{(int)name[i]:X4} at position {i})";
            }
        }

        return null;
    }
}
