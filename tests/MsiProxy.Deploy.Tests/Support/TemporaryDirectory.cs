namespace MsiProxy.Deploy.Tests.Support;

/// <summary>A fresh directory under the system's temp folder, deleted when the test ends, passed or failed.</summary>
internal sealed class TemporaryDirectory(string prefix) : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory(prefix).FullName;

    public void Dispose()
    {
        if (Directory.Exists(Path))
        {
            Directory.Delete(Path, recursive: true);
        }
    }
}
