namespace MsiProxy.Requests;

public static class ImdsPaths
{
    public const string Token = "/metadata/identity/oauth2/token";
    public const string Instance = "/metadata/instance";

    public static bool IsToken(string normalisedPath) => normalisedPath.Equals(Token, StringComparison.OrdinalIgnoreCase);

    /// <summary>True when <paramref name="path"/> is <paramref name="prefix"/> itself or lies below it (whole segments only).</summary>
    public static bool IsAtOrBelow(string path, string prefix)
    {
        prefix = prefix.TrimEnd('/');
        return path.StartsWith(prefix, StringComparison.OrdinalIgnoreCase)
            && (path.Length == prefix.Length || path[prefix.Length] == '/');
    }
}
