namespace MsiProxy.Testing;

/// <summary>Finds files of this repository from a test's output directory.</summary>
public static class RepositoryPaths
{
    private static readonly Lazy<string> RootPath = new(() =>
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "MsiProxy.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"MsiProxy.sln not found above {AppContext.BaseDirectory}.");
    });

    /// <summary>The directory holding MsiProxy.sln.</summary>
    public static string Root => RootPath.Value;

    public static string Combine(params string[] parts) => Path.Combine([Root, .. parts]);
}
