# CPU image. Build: docker build -t singer .   Run: docker run --rm -v $PWD/out:/out singer cover /app/singer/data/demo/demo_song.mp3 --voice ayana --out /out/
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends ffmpeg && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY singer ./singer
COPY workflows ./workflows
COPY models ./models
# torch first, CPU build, then everything else constrained to it; torchfcpe/torchcrepe (torchaudio) and
# audio-separator (onnx2torch -> torchvision) without their metadata deps: see the README
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
 && pip install --no-cache-dir -c constraints.txt . \
 && pip install --no-cache-dir --no-deps torchfcpe==0.0.4 torchcrepe==0.0.24 audio-separator==0.47.1
ENV SINGER_HOME=/data
VOLUME ["/data"]
# HTTP service: docker run -e SINGER_API_KEYS=... -p 8000:8000 -v singer-data:/data singer serve --host 0.0.0.0
EXPOSE 8000
ENTRYPOINT ["singer"]
CMD ["--help"]
