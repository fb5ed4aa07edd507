namespace MsiProxy.Requests;

/// <summary>
/// Reads the path of a raw request target into the one canonical form that is checked and sent upstream. The path is
/// percent-decoded exactly once; what comes out must be segments of IMDS's own alphabet — ASCII letters, digits, '-'
/// and '_' — or the request is refused. So no '%' (a second encoding), backslash, control character, dot segment, empty
/// segment, ';' parameter or non-ASCII character survives, and nothing downstream (Kestrel, <see cref="Uri"/>, IMDS)
/// can read the path differently from the gate. One trailing slash is accepted and dropped: msal-node sends it.
/// </summary>
internal static class CanonicalPath
{
    /// <summary>Matches <paramref name="rawPath"/> against the endpoint table; <paramref name="path"/> is what goes upstream.</summary>
    public static bool TryMatch(ReadOnlySpan<char> rawPath, out ImdsEndpoint endpoint, out string path)
    {
        endpoint = null!;
        path = "";
        var trimmed = rawPath.Length > 1 && rawPath[^1] == '/' ? rawPath[..^1] : rawPath;

        // What every SDK sends: answered without decoding or allocating.
        if (trimmed.Equals(ImdsEndpoints.Token.Path, StringComparison.OrdinalIgnoreCase))
        {
            endpoint = ImdsEndpoints.Token;
            path = endpoint.Path;
            return true;
        }

        // The App Service protocol's path, used exactly as IDENTITY_ENDPOINT gives it; no other spelling is accepted.
        if (trimmed.Equals(ImdsEndpoints.AppServiceToken.Path, StringComparison.OrdinalIgnoreCase))
        {
            endpoint = ImdsEndpoints.AppServiceToken;
            path = endpoint.Path;
            return true;
        }

        if (rawPath.IsEmpty || rawPath[0] != '/')
        {
            return false;
        }

        // Split on the slashes that were sent, then decode each segment once: an encoded '/' or '\' stays inside its
        // segment and fails the alphabet, like every other character IMDS paths never contain.
        var raw = trimmed[1..];
        var segments = new List<string>();
        foreach (var range in raw.Split('/'))
        {
            if (!PercentDecoding.TryDecode(raw[range], plusIsSpace: false, out var segment) || !IsImdsSegment(segment))
            {
                return false;
            }

            segments.Add(segment);
        }

        if (segments.Count < 2 || !segments[0].Equals("metadata", StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }

        var joined = "/" + string.Join('/', segments);
        foreach (var candidate in ImdsEndpoints.All)
        {
            if (joined.Equals(candidate.Path, StringComparison.OrdinalIgnoreCase))
            {
                endpoint = candidate;
                path = candidate.Path;
                return true;
            }
        }

        // Below /metadata/instance: a key path into the document, sent as the client spelled it (IMDS matches keys
        // case-insensitively). Below user data there is nothing; user data itself is its own endpoint (matched above).
        if (segments.Count > 2 && segments[1].Equals("instance", StringComparison.OrdinalIgnoreCase)
            && !ImdsPaths.IsAtOrBelow(joined, ImdsEndpoints.UserData.Path))
        {
            endpoint = ImdsEndpoints.Instance;
            path = ImdsEndpoints.Instance.Path + "/" + string.Join('/', segments.Skip(2));
            return true;
        }

        return false;
    }

    private static bool IsImdsSegment(string segment)
    {
        if (segment.Length == 0)
        {
            return false;
        }

        foreach (var c in segment)
        {
            if (!char.IsAsciiLetterOrDigit(c) && c is not ('-' or '_'))
            {
                return false;
            }
        }

        return true;
    }
}

/// <summary>Whole-segment path comparisons.</summary>
internal static class ImdsPaths
{
    /// <summary>True when <paramref name="path"/> is <paramref name="prefix"/> itself or lies below it (whole segments, any case).</summary>
    public static bool IsAtOrBelow(string path, string prefix)
    {
        prefix = prefix.TrimEnd('/');
        return path.StartsWith(prefix, StringComparison.OrdinalIgnoreCase) && (path.Length == prefix.Length || path[prefix.Length] == '/');
    }
}
