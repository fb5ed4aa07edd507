namespace MsiProxy.ImdsEmulator.Protocol;

/// <summary>The api-version values IMDS documents, oldest first.</summary>
internal static class ApiVersions
{
    public static readonly IReadOnlyList<string> All =
    [
        "2017-03-01", "2017-04-02", "2017-08-01", "2017-10-01", "2017-12-01", "2018-02-01", "2018-04-02", "2018-10-01",
        "2019-02-01", "2019-03-11", "2019-04-30", "2019-06-01", "2019-06-04", "2019-08-01", "2019-08-15", "2019-11-01",
        "2020-06-01", "2020-07-15", "2020-09-01", "2020-10-01", "2020-12-01", "2021-01-01", "2021-02-01", "2021-03-01",
        "2021-05-01", "2021-10-01", "2021-11-01", "2021-11-15", "2021-12-13", "2023-07-01", "2023-11-15", "2024-03-15",
        "2024-07-17", "2025-04-07",
    ];

    /// <summary>Managed-identity tokens exist since 2018-02-01.</summary>
    public const string FirstIdentityVersion = "2018-02-01";

    public static bool IsKnown(string? version) => version is not null && All.Contains(version, StringComparer.Ordinal);

    public static bool SupportsIdentity(string? version) =>
        IsKnown(version) && string.CompareOrdinal(version, FirstIdentityVersion) >= 0;

    /// <summary>The 400 body instance endpoints send for a missing or unknown api-version.</summary>
    public static string InvalidVersionBody() => ImdsResponses.Json(w =>
    {
        w.WriteString("error", "Bad request. api-version is invalid or was not specified in the request. For more information refer to aka.ms/azureimds");
        w.WriteStartArray("newest-versions");
        foreach (var version in All.Reverse().Take(3))
        {
            w.WriteStringValue(version);
        }

        w.WriteEndArray();
    });
}
