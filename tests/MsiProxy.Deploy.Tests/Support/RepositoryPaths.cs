namespace MsiProxy.Deploy.Tests.Support;

/// <summary>Locates the repository root (the folder holding MsiProxy.sln) from the test assembly's location.</summary>
internal static class RepositoryPaths
{
    public static string Root { get; } = FindRoot();

    public static string Combine(params string[] parts) => Path.Combine([Root, .. parts]);

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "MsiProxy.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("MsiProxy.sln not found above " + AppContext.BaseDirectory);
    }
}
