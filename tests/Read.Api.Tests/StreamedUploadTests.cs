using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using Microsoft.EntityFrameworkCore;
using Read.Domain.Datasets;
using Read.Domain.Files;
using Read.Domain.Persistence;

namespace Read.Api.Tests;

/// <summary>
/// Uploads stream into chunked database storage (docs/decisions/016): the size limit holds while the body streams,
/// files larger than one chunk come back byte-exact to the job that trains on them, and errors still name the line.
/// Hosts of their own, so the limit can be set above one chunk: embedded mode (SQLite, in-process training), and a
/// Postgres API where both providers must hold. A cut or crashed upload leaves no chunks behind.
/// </summary>
[Collection(ServiceCollection.Name)]
public sealed class StreamedUploadTests : IDisposable
{
    private const string DevelopmentKey = "rk_development_streamed_upload";
    private const long Limit = 3 * FileContentStore.ChunkBytes;
    private readonly string _dataDirectory = Directory.CreateTempSubdirectory("read-upload-").FullName;
    private static readonly Dictionary<string, string?> Settings = new()
    {
        ["Read:DevelopmentApiKey"] = DevelopmentKey,
        ["Read:MaxUploadBytes"] = Limit.ToString(),
    };

    [Fact]
    public async Task Upload_StreamedBodyFarOverTheLimit_Returns413AndStoresNothing()
    {
        await using var app = ReadApplication.Start(_dataDirectory, postgres: null, Settings);
        using var client = app.CreateClient(DevelopmentKey);
        // 64 MiB of valid JSONL sent chunked (no Content-Length), so only counting while streaming can catch it. Raw TCP:
        // HttpClient gives up on the response once the server stops reading and closes, which is what should happen.
        var (status, body, produced) = await StreamedUpload.SendAsync(client.BaseAddress!, DevelopmentKey, 64L * 1024 * 1024);
        Assert.True(status == 413, $"status {status}: {body}");
        Assert.Contains("\"payload_too_large\"", body);
        // The server answered long before the client had produced the whole body: it did not read it all first.
        Assert.True(produced < 32L * 1024 * 1024, $"client produced {produced} bytes before the answer");
        await AssertNothingStoredAsync(app);
    }

    [Fact]
    public async Task Upload_FileOfSeveralChunks_RoundTripsByteExactThroughAJob()
    {
        await using var app = ReadApplication.Start(_dataDirectory, postgres: null, Settings);
        using var client = app.CreateClient(DevelopmentKey);
        // Long texts (truncated when tokenised) make a small training set span three chunks.
        var padding = new string('x', 60_000);
        var examples = TestData.Sentiment(40, seed: 3).Select(e => e with { Text = e.Text + " " + padding }).ToList();
        var jsonl = TestData.Jsonl(examples);
        Assert.InRange(jsonl.Length, 2 * FileContentStore.ChunkBytes + 1, Limit);

        var response = await client.UploadAsync(jsonl);
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var file = await response.JsonAsync();
        var fileId = file.GetProperty("id").GetString()!;
        Assert.Equal(jsonl.Length, file.GetProperty("bytes").GetInt64());
        await using (var db = await app.Service<IDbContextFactory<ReadDbContext>>().CreateDbContextAsync())
        {
            Assert.Equal(3, await db.FileChunks.CountAsync(c => c.FileId == fileId));
            var stored = await db.Files.SingleAsync(f => f.Id == fileId);
            Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(jsonl)), stored.Sha256);
            await using var back = await FileContentStore.OpenReadAsync(db, fileId, CancellationToken.None);
            var copy = new MemoryStream();
            await back.CopyToAsync(copy);
            Assert.Equal(SHA256.HashData(jsonl), SHA256.HashData(copy.ToArray()));
        }

        var created = await client.CreateJobOkAsync(new
        {
            backbone = "tiny-bert", training_file = fileId,
            hyperparameters = new { epochs = 2, batch_size = 8, learning_rate = 0.005, validation_split = 0.25 },
        });
        var job = await client.WaitForJobAsync(created.GetProperty("id").GetString()!);
        Assert.True(job.GetProperty("status").GetString() == "succeeded", job.ToString());
        Assert.Equal(10, job.GetProperty("metrics").GetProperty("validation_examples").GetInt32()); // 25 % of the 40 read back
    }

    [Fact]
    public async Task Upload_MalformedLineAfterTheFirstChunk_NamesTheLineAndStoresNothing()
    {
        await using var app = ReadApplication.Start(_dataDirectory, postgres: null, Settings);
        using var client = app.CreateClient(DevelopmentKey);
        var good = TestData.Jsonl(Enumerable.Range(0, 1500).Select(i => new LabeledExample($"example {i} " + new string('y', 1000), null, i % 2 == 0 ? "a" : "b")));
        Assert.True(good.Length > FileContentStore.ChunkBytes);
        var content = good.Concat(Encoding.UTF8.GetBytes("{\"text\": \"broken\", \"label\": \n")).ToArray();
        var response = await client.UploadAsync(content);
        await response.AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_json");
        var problem = await response.JsonAsync();
        Assert.Equal(1501, problem.GetProperty("line").GetInt32());
        Assert.Contains("Line 1501", problem.GetProperty("detail").GetString());
        await AssertNothingStoredAsync(app);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Upload_ClientDisconnectsMidStream_LeavesNoChunks(bool postgres)
    {
        await using var database = postgres ? await PostgresDatabase.CreateAsync() : null;
        await using var app = ReadApplication.Start(_dataDirectory, database?.ConnectionString, Settings);
        using var admin = app.CreateClient(ReadApplication.AdminKey);
        var apiKey = (await (await admin.PostAsJsonAsync("/v1/admin/tenants", new { name = "cut-upload" })).JsonAsync()).GetProperty("api_key").GetString()!;
        var factory = app.Service<IDbContextFactory<ReadDbContext>>();
        using (var upload = await StreamedUpload.StartAsync(admin.BaseAddress!, apiKey))
        {
            // Two full chunks are in the database while the upload is still open ...
            await upload.SendAsync(2 * FileContentStore.ChunkBytes + FileContentStore.ChunkBytes / 2);
            await WaitUntilAsync(factory, chunks => chunks >= 2, "the server to store two chunks");
            // ... when the client goes away without finishing the body.
            upload.Abort();
        }
        await WaitUntilAsync(factory, chunks => chunks == 0, "the cut upload's chunks to be deleted");
        await AssertNothingStoredAsync(app);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task DeleteOrphans_RemovesOnlyStaleChunksOfNoFile(bool postgres)
    {
        await using var database = postgres ? await PostgresDatabase.CreateAsync() : null;
        await using var app = ReadApplication.Start(_dataDirectory, database?.ConnectionString, Settings);
        using var client = await app.CreateTenantClientAsync("orphans");
        var kept = (await (await client.UploadAsync(TestData.Jsonl(TestData.Sentiment(4, seed: 5)))).JsonAsync()).GetProperty("id").GetString()!;
        var factory = app.Service<IDbContextFactory<ReadDbContext>>();
        await using var db = await factory.CreateDbContextAsync();
        var now = DateTime.UtcNow;
        // A process killed mid-upload left these: no file row will ever own them. And an upload still streaming.
        FileChunk Chunk(string fileId, int index, DateTime at) => new() { FileId = fileId, Index = index, Content = [1, 2, 3], CreatedAt = at };
        db.FileChunks.AddRange(
            Chunk("file-dead", 0, now - FileContentStore.OrphanAge * 3), Chunk("file-dead", 1, now - FileContentStore.OrphanAge * 2),
            Chunk("file-streaming", 0, now - FileContentStore.OrphanAge * 3), Chunk("file-streaming", 1, now));
        await db.SaveChangesAsync();
        // The file that was stored long ago keeps its bytes whatever their age.
        await db.FileChunks.Where(c => c.FileId == kept).ExecuteUpdateAsync(s => s.SetProperty(c => c.CreatedAt, now - FileContentStore.OrphanAge * 10));

        Assert.Equal(2, await FileContentStore.DeleteOrphansAsync(db, now - FileContentStore.OrphanAge, CancellationToken.None));

        var left = await db.FileChunks.Select(c => c.FileId).Distinct().OrderBy(id => id).ToListAsync();
        Assert.Equal(new[] { kept, "file-streaming" }.Order(StringComparer.Ordinal), left.Order(StringComparer.Ordinal));
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync($"/v1/files/{kept}/content")).StatusCode);
    }

    private static async Task WaitUntilAsync(IDbContextFactory<ReadDbContext> factory, Func<int, bool> chunks, string what)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            await using (var db = await factory.CreateDbContextAsync())
                if (chunks(await db.FileChunks.CountAsync()))
                    return;
            Assert.True(DateTime.UtcNow < deadline, $"Timed out waiting for {what}.");
            await Task.Delay(100);
        }
    }

    private static async Task AssertNothingStoredAsync(ReadApplication app)
    {
        await using var db = await app.Service<IDbContextFactory<ReadDbContext>>().CreateDbContextAsync();
        Assert.Equal(0, await db.Files.CountAsync());
        Assert.Equal(0, await db.FileChunks.CountAsync());
    }

    public void Dispose()
    {
        try { Directory.Delete(_dataDirectory, recursive: true); } catch (IOException) { }
    }

    /// <summary>A multipart upload generated as it is sent, chunked, over a raw socket, reading the answer as soon as it comes.</summary>
    private static class StreamedUpload
    {
        private const string Boundary = "read-streamed-upload";

        public static async Task<(int Status, string Body, long Produced)> SendAsync(Uri server, string apiKey, long fileBytes)
        {
            using var tcp = new System.Net.Sockets.TcpClient();
            await tcp.ConnectAsync(server.Host, server.Port);
            var stream = tcp.GetStream();
            await stream.WriteAsync(Encoding.ASCII.GetBytes(
                $"POST /v1/files HTTP/1.1\r\nHost: {server.Authority}\r\nAuthorization: Bearer {apiKey}\r\n" +
                $"Content-Type: multipart/form-data; boundary={Boundary}\r\nTransfer-Encoding: chunked\r\n\r\n"));
            var answer = ReadResponseAsync(stream);
            await WriteChunkAsync(stream, Encoding.ASCII.GetBytes(
                $"--{Boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.jsonl\"\r\nContent-Type: application/jsonl\r\n\r\n"));
            var line = Encoding.UTF8.GetBytes("{\"text\":\"" + new string('a', 1000) + "\",\"label\":\"x\"}\n");
            var block = Enumerable.Repeat(line, 64).SelectMany(b => b).ToArray();
            long produced = 0;
            try
            {
                while (produced < fileBytes && !answer.IsCompleted)
                {
                    await WriteChunkAsync(stream, block);
                    produced += block.Length;
                }
                if (!answer.IsCompleted)
                {
                    await WriteChunkAsync(stream, Encoding.ASCII.GetBytes($"\r\n--{Boundary}--\r\n"));
                    await stream.WriteAsync("0\r\n\r\n"u8.ToArray());
                }
            }
            catch (IOException)
            {
                // The server closed its side after answering: expected once the limit is passed.
            }
            var (status, body) = await answer;
            return (status, body, produced);
        }

        /// <summary>An upload that has sent its headers and the file part's start; the test decides how much more, and how it ends.</summary>
        public static async Task<Partial> StartAsync(Uri server, string apiKey)
        {
            var tcp = new System.Net.Sockets.TcpClient();
            await tcp.ConnectAsync(server.Host, server.Port);
            var stream = tcp.GetStream();
            await stream.WriteAsync(Encoding.ASCII.GetBytes(
                $"POST /v1/files HTTP/1.1\r\nHost: {server.Authority}\r\nAuthorization: Bearer {apiKey}\r\n" +
                $"Content-Type: multipart/form-data; boundary={Boundary}\r\nTransfer-Encoding: chunked\r\n\r\n"));
            await WriteChunkAsync(stream, Encoding.ASCII.GetBytes(
                $"--{Boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"cut.jsonl\"\r\nContent-Type: application/jsonl\r\n\r\n"));
            return new Partial(tcp, stream);
        }

        public sealed class Partial(System.Net.Sockets.TcpClient tcp, Stream stream) : IDisposable
        {
            /// <summary>Sends at least <paramref name="bytes"/> bytes of valid JSONL lines.</summary>
            public async Task SendAsync(long bytes)
            {
                var line = Encoding.UTF8.GetBytes("{\"text\":\"" + new string('a', 1000) + "\",\"label\":\"x\"}\n");
                var block = Enumerable.Repeat(line, 64).SelectMany(b => b).ToArray();
                for (long sent = 0; sent < bytes; sent += block.Length)
                    await WriteChunkAsync(stream, block);
                await stream.FlushAsync();
            }

            /// <summary>Drops the connection at once (a reset, no end of body), as a client that crashed or lost its network.</summary>
            public void Abort()
            {
                tcp.Client.LingerState = new System.Net.Sockets.LingerOption(true, 0);
                tcp.Client.Close();
            }

            public void Dispose() => tcp.Dispose();
        }

        private static async Task WriteChunkAsync(Stream stream, byte[] data)
        {
            await stream.WriteAsync(Encoding.ASCII.GetBytes($"{data.Length:X}\r\n"));
            await stream.WriteAsync(data);
            await stream.WriteAsync("\r\n"u8.ToArray());
        }

        private static async Task<(int Status, string Body)> ReadResponseAsync(Stream stream)
        {
            var received = new List<byte>();
            var buffer = new byte[8192];
            int headEnd;
            while ((headEnd = IndexOf(received, "\r\n\r\n"u8.ToArray())) < 0)
            {
                var n = await stream.ReadAsync(buffer);
                if (n == 0)
                    throw new IOException("Connection closed before a response.");
                received.AddRange(buffer.AsSpan(0, n).ToArray());
            }
            var head = Encoding.ASCII.GetString(received.GetRange(0, headEnd).ToArray());
            var status = int.Parse(head.Split(' ')[1]);
            var lengthLine = head.Split("\r\n").FirstOrDefault(h => h.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase));
            // Without a Content-Length the answer is chunked: read to its last chunk (the framing stays in the body text).
            var length = lengthLine is null ? int.MaxValue : int.Parse(lengthLine.Split(':')[1].Trim());
            while (received.Count < headEnd + 4 + (long)length && !(lengthLine is null && IndexOf(received, "\r\n0\r\n\r\n"u8.ToArray()) > headEnd))
            {
                var n = await stream.ReadAsync(buffer);
                if (n == 0)
                    break;
                received.AddRange(buffer.AsSpan(0, n).ToArray());
            }
            return (status, Encoding.UTF8.GetString(received.Skip(headEnd + 4).Take(length).ToArray()));
        }

        private static int IndexOf(List<byte> haystack, byte[] needle)
        {
            for (var i = 0; i + needle.Length <= haystack.Count; i++)
                if (haystack.Skip(i).Take(needle.Length).SequenceEqual(needle))
                    return i;
            return -1;
        }
    }
}
